package sender

import (
	"bytes"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// makeTree generates a test tree under dir: nested directories, files of
// varied sizes (empty, > 1 MiB), modes and mtimes, symlinks (one pointing
// outside the tree), names with spaces and UTF-8, and the directories
// Portage excludes.
func makeTree(t *testing.T, dir string, nfiles int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(42, uint64(nfiles)))
	base := time.Unix(1700000000, 0)
	write := func(rel string, data []byte, mode fs.FileMode, mt time.Time) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	cats := []string{"app-misc", "dev-lang", "sys-apps", "net-misc", "x11-libs"}
	for i := 0; i < nfiles; i++ {
		cat := cats[i%len(cats)]
		pkg := fmt.Sprintf("pkg%d", i%17)
		name := fmt.Sprintf("%s/%s/%s-%d.ebuild", cat, pkg, pkg, i)
		size := rng.IntN(3000)
		if i%23 == 0 {
			size = 0
		}
		data := make([]byte, size)
		for j := range data {
			data[j] = byte('a' + rng.IntN(26))
		}
		mode := fs.FileMode(0o644)
		if i%7 == 0 {
			mode = 0o755
		}
		if i%11 == 0 {
			mode = 0o600
		}
		write(name, data, mode, base.Add(time.Duration(i)*time.Minute+time.Duration(rng.IntN(1e9))))
	}
	big := make([]byte, 1<<20+12345)
	for j := range big {
		big[j] = byte(rng.IntN(256))
	}
	write("metadata/big file.bin", big, 0o644, base)
	write("metadata/timestamp.chk", []byte("Tue, 24 Nov 2026 18:00:01 +0000\n"), 0o644, base)
	write("profiles/ünïcödé name.txt", []byte("utf-8\n"), 0o644, base)
	write("profiles/with space/a b.txt", []byte("spaces\n"), 0o640, base)
	write("Manifest", []byte("MANIFEST top\n"), 0o644, base)
	for _, ex := range []string{"distfiles/foo.tar.gz", "local/x", "packages/All/p.tbz2", ".git/HEAD"} {
		write(ex, []byte("must not be sent\n"), 0o644, base)
	}
	for _, l := range []struct{ name, target string }{
		{"profiles/link-in", "with space/a b.txt"},
		{"profiles/link-out", "../../../../etc/passwd"},
		{"profiles/link-dir", "with space"},
	} {
		if err := os.Symlink(l.target, filepath.Join(dir, l.name)); err != nil {
			t.Fatal(err)
		}
		ts := []unix.Timespec{unix.NsecToTimespec(base.UnixNano()), unix.NsecToTimespec(base.UnixNano())}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(dir, l.name), ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "empty dir"), 0o750); err != nil {
		t.Fatal(err)
	}
}

// compareTrees checks that dst mirrors src: same entries (minus the
// top-level names or relative paths in skip), types, permissions, contents, symlink
// targets and file mtimes (to the second unless nsec: protocols below
// 31 carry no nanoseconds).
func compareTrees(t *testing.T, src, dst string, nsec bool, skip ...string) {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		top := strings.Split(rel, string(filepath.Separator))[0]
		for _, s := range skip {
			if top == s || rel == s {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		seen[rel] = true
		si, err := os.Lstat(p)
		if err != nil {
			return err
		}
		di, err := os.Lstat(filepath.Join(dst, rel))
		if err != nil {
			t.Errorf("missing in destination: %s", rel)
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if si.Mode().Type() != di.Mode().Type() {
			t.Errorf("%s: type %v, want %v", rel, di.Mode().Type(), si.Mode().Type())
			return nil
		}
		switch {
		case si.Mode()&fs.ModeSymlink != 0:
			st, _ := os.Readlink(p)
			dt, _ := os.Readlink(filepath.Join(dst, rel))
			if st != dt {
				t.Errorf("%s: link target %q, want %q", rel, dt, st)
			}
			if !si.ModTime().Truncate(time.Second).Equal(di.ModTime().Truncate(time.Second)) {
				t.Errorf("%s: symlink mtime %v, want %v", rel, di.ModTime(), si.ModTime())
			}
		case si.Mode().IsRegular():
			if si.Mode().Perm() != di.Mode().Perm() {
				t.Errorf("%s: mode %v, want %v", rel, di.Mode().Perm(), si.Mode().Perm())
			}
			smt, dmt := si.ModTime(), di.ModTime()
			if !nsec {
				smt, dmt = smt.Truncate(time.Second), dmt.Truncate(time.Second)
			}
			if !smt.Equal(dmt) {
				t.Errorf("%s: mtime %v, want %v", rel, di.ModTime(), si.ModTime())
			}
			a, _ := os.ReadFile(p)
			b, _ := os.ReadFile(filepath.Join(dst, rel))
			if !bytes.Equal(a, b) {
				t.Errorf("%s: contents differ (%d vs %d bytes)", rel, len(b), len(a))
			}
		case si.IsDir() && rel != ".":
			if si.Mode().Perm() != di.Mode().Perm() {
				t.Errorf("%s: mode %v, want %v", rel, di.Mode().Perm(), si.Mode().Perm())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Nothing extra in the destination.
	_ = filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dst, p)
		if !seen[rel] {
			t.Errorf("unexpected in destination: %s", rel)
		}
		return nil
	})
}
