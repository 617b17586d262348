package interop

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// cmpOpts say what a client run was expected to preserve.
type cmpOpts struct {
	perms    bool // permission bits of files and directories (-p)
	times    bool // file mtimes, whole seconds (-t)
	nanos    bool // file mtimes to the nanosecond (-t at protocol 31)
	dirTimes bool // directory mtimes (-t without --omit-dir-times)
	links    bool // symlinks copied as symlinks (-l); without it they are skipped
	// safeLinks: symlinks pointing outside the tree, or absolute, are not
	// copied (--safe-links).
	safeLinks bool
	// exclude reports source entries expected to be absent from the
	// destination (an excluded directory takes its subtree with it).
	exclude func(rel string, isDir bool) bool
	// skipRoot leaves the attributes of the top directory itself alone
	// (with -R it is not part of the transfer).
	skipRoot bool
}

// portageCmp is what Portage's rsync options preserve.
func portageCmp(proto int) cmpOpts {
	return cmpOpts{perms: true, times: true, nanos: proto == 0 || proto >= 31, links: true, safeLinks: true,
		exclude: excludeTop("distfiles", "local", "packages", ".git")}
}

// excludeTop excludes the given top-level names (anchored excludes).
func excludeTop(names ...string) func(string, bool) bool {
	return func(rel string, _ bool) bool {
		for _, n := range names {
			if rel == n {
				return true
			}
		}
		return false
	}
}

// entry is what compareTrees knows about one path.
type entry struct {
	rel  string
	info fs.FileInfo
	link string
}

// compareTrees walks src and dst and reports, as test errors, every
// difference a client run with options o must not leave: missing or extra
// names, types, content, modes, mtimes and symlink targets. It returns the
// number of differences.
func compareTrees(t *testing.T, src, dst string, o cmpOpts) int {
	t.Helper()
	want, err := scanTree(src, o, true)
	if err != nil {
		t.Fatalf("scan source: %v", err)
	}
	got, err := scanTree(dst, o, false)
	if err != nil {
		t.Fatalf("scan destination: %v", err)
	}
	var diffs []string
	bufA, bufB := make([]byte, 64<<10), make([]byte, 64<<10)
	add := func(format string, args ...any) { diffs = append(diffs, fmt.Sprintf(format, args...)) }
	for rel, w := range want {
		g, ok := got[rel]
		if rel == "." && o.skipRoot {
			continue
		}
		if !ok {
			add("missing in destination: %s (%v)", rel, w.info.Mode())
			continue
		}
		wt, gt := w.info.Mode().Type(), g.info.Mode().Type()
		if wt != gt {
			add("%s: type %v, want %v", rel, gt, wt)
			continue
		}
		switch {
		case wt&fs.ModeSymlink != 0:
			if g.link != w.link {
				add("%s: symlink -> %q, want %q", rel, g.link, w.link)
			}
			continue // symlink modes and times are not compared
		case wt.IsRegular():
			if g.info.Size() != w.info.Size() {
				add("%s: size %d, want %d", rel, g.info.Size(), w.info.Size())
			} else if same, err := sameContentBuf(filepath.Join(src, rel), filepath.Join(dst, rel), bufA, bufB); err != nil {
				add("%s: %v", rel, err)
			} else if !same {
				add("%s: content differs", rel)
			}
			if o.times {
				wm, gm := w.info.ModTime(), g.info.ModTime()
				if wm.Unix() != gm.Unix() || (o.nanos && wm.Nanosecond() != gm.Nanosecond()) {
					add("%s: mtime %s, want %s", rel, gm.Format("2006-01-02T15:04:05.999999999"), wm.Format("2006-01-02T15:04:05.999999999"))
				}
			}
		case wt.IsDir():
			if o.dirTimes && w.info.ModTime().Unix() != g.info.ModTime().Unix() {
				add("%s/: mtime %s, want %s", rel, g.info.ModTime().Format("2006-01-02T15:04:05"), w.info.ModTime().Format("2006-01-02T15:04:05"))
			}
		}
		if o.perms && g.info.Mode().Perm() != w.info.Mode().Perm() {
			add("%s: mode %v, want %v", rel, g.info.Mode().Perm(), w.info.Mode().Perm())
		}
	}
	for rel, g := range got {
		if _, ok := want[rel]; !ok {
			add("unexpected in destination: %s (%v)", rel, g.info.Mode())
		}
	}
	if len(diffs) > 0 {
		sort.Strings(diffs)
		shown := diffs
		if len(shown) > 40 {
			shown = shown[:40]
		}
		t.Errorf("%s differs from %s in %d places (%d entries expected), first ones:\n  %s",
			dst, src, len(diffs), len(want), strings.Join(shown, "\n  "))
	}
	return len(diffs)
}

// scanTree lists the tree below root (root itself as "."). For the source
// (isSrc), it drops what o says the client does not copy.
func scanTree(root string, o cmpOpts, isSrc bool) (map[string]entry, error) {
	out := map[string]entry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		e := entry{rel: rel, info: info}
		if isSrc && rel != "." && o.exclude != nil && o.exclude(rel, d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			if e.link, err = os.Readlink(p); err != nil {
				return err
			}
			if isSrc && (!o.links || (o.safeLinks && unsafeLink(e.link, rel))) {
				return nil
			}
		}
		out[rel] = e
		return nil
	})
	return out, err
}

// unsafeLink reports whether a symlink at rel (relative to the transfer
// root) with the given target escapes the tree: absolute or empty targets,
// or more ".." than the link's depth allows at any point. This is the rule
// --safe-links applies.
func unsafeLink(target, rel string) bool {
	if target == "" || strings.HasPrefix(target, "/") {
		return true
	}
	depth := 0
	dirParts := strings.Split(rel, "/")
	for _, p := range dirParts[:len(dirParts)-1] {
		switch p {
		case "..":
			depth = 0
		case ".", "":
		default:
			depth++
		}
	}
	parts := strings.Split(target, "/")
	for i, p := range parts {
		last := i == len(parts)-1
		switch {
		case p == "..":
			depth--
			if depth < 0 {
				return true
			}
		case p == "." || p == "" || last:
		default:
			depth++
		}
	}
	return false
}

// sameContent compares two files byte for byte without reading them whole.
func sameContent(a, b string) (bool, error) {
	return sameContentBuf(a, b, make([]byte, 64<<10), make([]byte, 64<<10))
}

// sameContentBuf is sameContent with the caller's two equal-sized buffers.
func sameContentBuf(a, b string, ba, bb []byte) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		if ea == io.EOF || ea == io.ErrUnexpectedEOF {
			return eb == io.EOF || eb == io.ErrUnexpectedEOF, nil
		}
		if ea != nil {
			return false, ea
		}
		if eb != nil {
			return false, eb
		}
	}
}

func TestUnsafeLink(t *testing.T) {
	cases := []struct {
		target, rel string
		unsafe      bool
	}{
		{"/etc/passwd", "a", true},
		{"", "a", true},
		{"b", "a", false},
		{"../x", "a", true},
		{"../x", "d/a", false},
		{"../../x", "d/a", true},
		{"../eclass/base.eclass", "eclass/alias.eclass", false},
		{"../../outside-of-the-tree/file", "metadata/outside-link", true},
		{"x/../../y", "d/a", false},
		{"x/../../../y", "d/a", true},
		{"..", "d/a", false},
		{"../..", "d/a", true},
		{"23.0", "profiles/default/linux/amd64/current", false},
	}
	for _, c := range cases {
		if got := unsafeLink(c.target, c.rel); got != c.unsafe {
			t.Errorf("unsafeLink(%q, %q) = %v, want %v", c.target, c.rel, got, c.unsafe)
		}
	}
}
