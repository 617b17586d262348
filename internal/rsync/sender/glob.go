package sender

import (
	"path"
	"strings"

	"github.com/lanmirror/lanmirror/internal/rsync/flist"
)

// maxGlobResults bounds the paths one wildcard argument may expand to.
const maxGlobResults = 100000

// hasMeta tells whether a path component holds wildcard characters.
func hasMeta(s string) bool { return strings.ContainsAny(s, "*?[") }

// expandGlobs expands wildcards in the client's source paths as rsyncd
// does: component by component through the module root, skipping "."
// and "..", hidden by the server-side excludes; intermediate matches
// must be directories. An argument that matches nothing is kept as is
// (and then reported missing).
func (s *session) expandGlobs(c *flist.Cache, paths []string) []string {
	var out []string
	for _, p := range paths {
		if !hasMeta(p) {
			out = append(out, p)
			continue
		}
		trailing := strings.HasSuffix(p, "/")
		parts := strings.Split(strings.Trim(p, "/"), "/")
		var found []string
		s.globMatch(c, "", parts, &found)
		if len(found) == 0 {
			out = append(out, p)
			continue
		}
		for _, f := range found {
			if trailing {
				f += "/"
			}
			out = append(out, f)
		}
	}
	return out
}

// globMatch appends to found the paths below dir matching parts.
func (s *session) globMatch(c *flist.Cache, dir string, parts []string, found *[]string) {
	if len(*found) >= maxGlobResults {
		return
	}
	if len(parts) == 0 {
		*found = append(*found, dir)
		return
	}
	part, rest := parts[0], parts[1:]
	join := func(name string) string {
		if dir == "" {
			return name
		}
		return dir + "/" + name
	}
	if !hasMeta(part) {
		s.globMatch(c, join(part), rest, found)
		return
	}
	open := dir
	if open == "" {
		open = "."
	}
	d, err := s.cfg.Root.Open(open)
	if err != nil {
		return
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return
	}
	pat := rsyncPattern(part)
	for _, n := range names {
		if ok, _ := path.Match(pat, n); !ok {
			continue
		}
		rel := join(n)
		fi, err := s.cfg.Root.Stat(rel)
		if err != nil || (len(rest) > 0 && !fi.IsDir()) {
			continue
		}
		if c.Excluded(rel, fi.IsDir()) {
			continue
		}
		s.globMatch(c, rel, rest, found)
	}
}

// rsyncPattern turns rsync's "[!...]" negated classes into Go's "[^...]".
func rsyncPattern(p string) string {
	return strings.ReplaceAll(p, "[!", "[^")
}
