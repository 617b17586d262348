package flist

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/lanmirror/lanmirror/internal/testutil"
)

// TestFileSumShared: with a watched scan, -c sums are computed once and
// shared; an in-place change of the file yields a new scan and a new
// sum; without a watcher every call computes.
func TestFileSumShared(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("inotify only")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := openCache(t, dir, nil)
	c.Recheck = 0
	req := Request{Paths: []string{""}, Recursive: true, Protocol: 31}
	entry := func() *File {
		l, err := c.Select(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range l.Files {
			if f.Name == "f" {
				return f
			}
		}
		t.Fatal("f not listed")
		return nil
	}
	calls := 0
	compute := func(f *File) ([]byte, error) {
		calls++
		b, err := c.root.ReadFile(f.Path)
		return b, err
	}
	f := entry()
	if c.watch.get() == nil {
		testutil.MissingTool(t, "inotify unavailable here (fs.inotify.max_user_instances/max_user_watches exhausted?)")
	}
	for range 3 {
		sum, err := c.FileSum(f, "md5", compute)
		if err != nil || string(sum) != "one" {
			t.Fatalf("sum %q %v", sum, err)
		}
	}
	if calls != 1 {
		t.Errorf("%d computations for one file, want 1", calls)
	}
	// In place, same size: a new scan and a new sum.
	if err := os.WriteFile(p, []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	f = entry()
	if sum, _ := c.FileSum(f, "md5", compute); string(sum) != "two" {
		t.Errorf("stale sum %q after an in-place change", sum)
	}
	// Without a watcher nothing is kept.
	c.Close()
	c.Invalidate()
	f = entry()
	calls = 0
	c.FileSum(f, "md5", compute)
	c.FileSum(f, "md5", compute)
	if calls != 2 {
		t.Errorf("%d computations without a watcher, want 2", calls)
	}
}
