package flist

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/lanmirror/lanmirror/internal/testtree"
)

// TestParallelScanSameAsSequential: walking the subtrees of the scanned
// directory in parallel yields exactly the sequential walk's entries, in
// the same order, with the same directory stamps; also for a subtree.
func TestParallelScanSameAsSequential(t *testing.T) {
	dir := t.TempDir()
	if _, err := testtree.Generate(dir, testtree.Options{Files: 1500, BigFile: -1, PortageExcluded: true}); err != nil {
		t.Fatal(err)
	}
	// Sibling directories whose names sort differently with the "/".
	for _, d := range []string{"ab", "ab-c", "ab.c", "ab0", "ab/x-y"} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.FromSlash(d)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(d), "f"), []byte(d), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	c := NewCache(root, []string{"/distfiles"}, nil)
	c.Watch = false
	ctx := context.Background()
	for _, rel := range []string{".", "metadata"} {
		scan := func(workers int) ([]string, map[string]dirStamp) {
			t.Helper()
			fi, err := root.Lstat(rel)
			if err != nil {
				t.Fatal(err)
			}
			top, err := c.fileOf(rel, fi)
			if err != nil {
				t.Fatal(err)
			}
			out := []*File{top}
			dirs := map[string]dirStamp{}
			rootfd, closeRoot := c.openRootFD()
			defer closeRoot()
			if err := c.walkDir(ctx, rel, &out, dirs, workers, rootfd); err != nil {
				t.Fatal(err)
			}
			names := make([]string, len(out))
			for i, f := range out {
				names[i] = fmt.Sprintf("%s %o %d", f.Path, f.Mode, f.Size)
			}
			return names, dirs
		}
		seqNames, seqDirs := scan(1)
		if len(seqNames) < 100 {
			t.Fatalf("%s: only %d entries scanned", rel, len(seqNames))
		}
		for _, w := range []int{2, 3, 8} {
			names, dirs := scan(w)
			if !reflect.DeepEqual(names, seqNames) {
				t.Errorf("%s, %d workers: entries differ from the sequential walk", rel, w)
			}
			if !reflect.DeepEqual(dirs, seqDirs) {
				t.Errorf("%s, %d workers: %d directory stamps, sequential %d", rel, w, len(dirs), len(seqDirs))
			}
		}
	}
	// The shared scan (parallel) is in the protocol's sort order.
	s, err := c.full(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(s.files); i++ {
		if Compare(s.files[i-1], s.files[i]) >= 0 {
			t.Fatalf("scan out of order at %d: %q before %q", i, s.files[i-1].Path, s.files[i].Path)
		}
	}
}

// TestCompareDirNames: as comparing the names with a "/" appended.
func TestCompareDirNames(t *testing.T) {
	names := []string{"", "a", "ab", "a-b", "a.b", "a0", "a/", "a\x00", "a\xff", "ü", "b", "ab-c", "abc"}
	for _, a := range names {
		for _, b := range names {
			if got, want := compareDirNames(a, b), strings.Compare(a+"/", b+"/"); got != want {
				t.Errorf("compareDirNames(%q, %q) = %d, want %d", a, b, got, want)
			}
		}
	}
}

// TestReadDirSameAsRoot: every directory of a generated tree (symlinks
// in and out of it, odd modes, a fifo) reads the same with readDir (the
// descriptor-relative reader on Linux) as through the Root; and a
// directory that is a symlink leaving the module reads as the Root
// reads it.
func TestReadDirSameAsRoot(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "mod")
	if _, err := testtree.Generate(dir, testtree.Options{Files: 400, BigFile: -1}); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(base, "outside")
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "out-abs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../outside", filepath.Join(dir, "out-rel")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("metadata", filepath.Join(dir, "in-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(strings.Repeat("long/", 300), filepath.Join(dir, "long-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "setuid"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "setuid"), 0o4755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "metadata"), 0o1777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	_ = syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644)
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	c := NewCache(root, []string{"/profiles/desc"}, nil)
	c.Watch = false
	rootfd, closeRoot := c.openRootFD()
	defer closeRoot()
	byPath := func(fs []*File) []File {
		out := make([]File, len(fs))
		for i, f := range fs {
			out[i] = *f
		}
		slices.SortFunc(out, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
		return out
	}
	dirs := []string{".", "out-abs", "out-rel", "in-link", "missing"}
	if err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && p != dir {
			rel, _ := filepath.Rel(dir, p)
			dirs = append(dirs, filepath.ToSlash(rel))
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		f1, s1, err1 := c.readDir(d, rootfd)
		f2, s2, err2 := c.readDirRoot(d)
		if (err1 == nil) != (err2 == nil) {
			t.Errorf("%s: error %v, through the Root %v", d, err1, err2)
		}
		if !reflect.DeepEqual(byPath(f1), byPath(f2)) || !reflect.DeepEqual(byPath(s1), byPath(s2)) {
			t.Errorf("%s: entries differ from the Root's:\n%+v %+v\n%+v %+v", d, byPath(f1), byPath(s1), byPath(f2), byPath(s2))
		}
		for _, f := range append(f1, s1...) {
			if strings.Contains(f.Path, "secret") {
				t.Errorf("%s: lists %s from outside the module", d, f.Path)
			}
		}
	}
}
