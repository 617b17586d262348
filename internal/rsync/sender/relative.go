package sender

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/lanmirror/lanmirror/internal/rsync/filter"
	"github.com/lanmirror/lanmirror/internal/rsync/flist"
)

// splitRelative splits a module-relative -R source path as rsync does:
// the part before "/./" only locates the files (it is not sent), a
// leading "./" asks for an implied "." entry; the rest is the name sent.
func splitRelative(p string) (base, rest string, dot bool) {
	if i := strings.Index(p, "/./"); i >= 0 {
		base, rest = p[:i], p[i+3:]
	} else {
		rest = p
	}
	rest = strings.TrimLeft(rest, "/")
	if strings.HasPrefix(rest, "./") && len(rest) > 2 {
		dot = true
	}
	rest = path.Clean("/" + rest)[1:]
	if rest == "" {
		rest = "."
	}
	return strings.Trim(base, "/"), rest, dot
}

// joinRel joins module-relative path parts, "" and "." meaning the
// root; the root itself is ".".
func joinRel(a, b string) string {
	if a == "." {
		a = ""
	}
	if b == "." {
		b = ""
	}
	switch {
	case a == "" && b == "":
		return "."
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "/" + b
}

// buildRelative builds the list for -R (--relative): every source path
// keeps its full name, preceded by its implied directories (unless
// --no-implied-dirs), as stock rsync sends them.
func (s *session) buildRelative(ctx context.Context, c *flist.Cache, paths []string, rules *filter.Rules) ([]*flist.File, error) {
	var out []*flist.File
	implied := map[string]bool{}
	addImplied := func(name, rel string) error {
		if implied[name] {
			return nil
		}
		fi, err := s.cfg.Root.Stat(joinRel(rel, "")) // implied dirs follow symlinks
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", rel)
		}
		implied[name] = true
		f := &flist.File{Name: name, Path: rel, Mode: flist.ModeDir | uint32(fi.Mode().Perm()), Size: fi.Size(),
			ModTime: fi.ModTime().Unix(), ModNsec: int32(fi.ModTime().Nanosecond()), Implied: true}
		f.UID, f.GID = flist.OwnerOf(fi)
		out = append(out, f)
		return nil
	}
	for _, p := range paths {
		base, rest, dot := splitRelative(p)
		full := joinRel(base, rest)
		if strings.Contains("/"+rest+"/", "/../") {
			s.reportMissing(p, errors.New("\"..\" in a relative path"))
			continue
		}
		fi, err := s.cfg.Root.Lstat(joinRel(full, ""))
		if err != nil || c.Excluded(full, fi.IsDir()) {
			if err == nil {
				err = fs.ErrNotExist
			}
			s.reportMissing(p, err)
			continue
		}
		if dot {
			if err := addImplied(".", joinRel(base, ".")); err != nil {
				s.reportMissing(p, err)
				continue
			}
		}
		if !s.o.NoImpliedDirs && rest != "." {
			comps := strings.Split(rest, "/")
			ok := true
			for i := 1; i < len(comps) && ok; i++ {
				name := strings.Join(comps[:i], "/")
				if err := addImplied(name, joinRel(base, name)); err != nil {
					s.reportMissing(p, err)
					ok = false
				}
			}
			if !ok {
				continue
			}
		}
		arg := full
		if rest == "." {
			arg = joinRel(base, "") + "/"
		}
		sub, err := c.Select(ctx, flist.Request{Paths: []string{arg}, Recursive: s.o.Recursive, Links: true, Protocol: s.cfg.Protocol})
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			s.reportMissing(p, err)
			continue
		}
		prefix := path.Dir(rest) // Select names entries after the last component
		var skip string
		for i, e := range sub.Files {
			g := *e
			switch {
			case rest == ".":
				g.Name = e.Name
			case prefix == ".":
				g.Name = e.Name
			default:
				g.Name = prefix + "/" + e.Name
			}
			if skip != "" && strings.HasPrefix(g.Name, skip) {
				continue
			}
			skip = ""
			if i > 0 && rules.Excluded(g.Name, g.IsDir()) {
				if g.IsDir() {
					skip = g.Name + "/"
				}
				continue
			}
			out = append(out, &g)
		}
	}
	cmp := flist.Compare
	if s.cfg.Protocol < 29 {
		cmp = func(a, b *flist.File) int { return strings.Compare(a.Name, b.Name) }
	}
	slices.SortStableFunc(out, func(a, b *flist.File) int {
		if c := cmp(a, b); c != 0 {
			return c
		}
		// The same name twice: the entry with contents first (kept).
		switch {
		case a.Implied == b.Implied:
			return 0
		case b.Implied:
			return -1
		}
		return 1
	})
	return slices.CompactFunc(out, func(a, b *flist.File) bool { return a.Name == b.Name }), nil
}
