package flist

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
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
			if err := c.walkDir(ctx, rel, &out, dirs, workers); err != nil {
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
