package flist

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/lanmirror/lanmirror/internal/testutil"
)

// TestWatchedScanSeesEveryChange: with directory watches (Linux), a
// chmod of a file (which leaves directory mtimes alone) and a new file
// deep in the tree show up in the next list at once.
func TestWatchedScanSeesEveryChange(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("inotify only")
	}
	dir := t.TempDir()
	f := filepath.Join(dir, "a", "b", "f")
	if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := openCache(t, dir, nil)
	c.Recheck = 0
	req := Request{Paths: []string{""}, Recursive: true, Protocol: 31}
	find := func(name string) *File {
		l, err := c.Select(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range l.Files {
			if e.Name == name {
				return e
			}
		}
		return nil
	}
	if e := find("a/b/f"); e == nil || e.Mode&0o777 != 0o644 {
		t.Fatalf("initial entry %+v", e)
	}
	if c.watch.get() == nil {
		testutil.MissingTool(t, "inotify unavailable here (fs.inotify.max_user_instances/max_user_watches exhausted?)")
	}
	if err := os.Chmod(f, 0o600); err != nil {
		t.Fatal(err)
	}
	if e := find("a/b/f"); e == nil || e.Mode&0o777 != 0o600 {
		t.Fatalf("chmod not seen: %+v", e)
	}
	if err := os.WriteFile(filepath.Join(dir, "a", "b", "g"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if find("a/b/g") == nil {
		t.Fatal("new file not seen")
	}
	// Unchanged: the same scan is reused.
	s1, _ := c.full(context.Background())
	s2, _ := c.full(context.Background())
	if s1 != s2 {
		t.Error("unchanged tree rescanned")
	}
	// Close drops the watches; changes are still seen through mtimes.
	c.Close()
	if c.watch.get() != nil {
		t.Fatal("watcher kept after Close")
	}
	if err := os.WriteFile(filepath.Join(dir, "a", "h"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if find("a/h") == nil {
		t.Fatal("new file not seen after Close")
	}
}
