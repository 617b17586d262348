package flist

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestPrepareShared checks that identical requests share one encoded
// list, that the bytes equal a fresh encoding, that keep filters, and
// that a change in the tree produces a new list.
func TestPrepareShared(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"a/x", "a/y", "b/z"} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("a/x", filepath.Join(dir, "l")); err != nil {
		t.Fatal(err)
	}
	c := openCache(t, dir, nil)
	c.Recheck = 0
	ctx := context.Background()
	req := Request{Paths: []string{""}, Recursive: true, Links: false, Protocol: 31}
	eo := EncodeOptions{Protocol: 31, VarintFlags: true, Recursive: true}
	noLinks := func(f *File) bool { return !f.IsLink() }
	p1, err := c.Prepare(ctx, req, "k", noLinks, eo)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := c.Prepare(ctx, req, "k", noLinks, eo)
	if err != nil {
		t.Fatal(err)
	}
	if p1 != p2 {
		t.Error("identical requests did not share the prepared list")
	}
	for _, f := range p1.Files {
		if f.IsLink() {
			t.Error("keep did not filter the symlink")
		}
	}
	if p1.TotalSize != 3+3+3 {
		t.Errorf("total size %d", p1.TotalSize)
	}
	var want bytesBuf
	if err := (&List{Files: p1.Files}).Encode(&want, eo); err != nil {
		t.Fatal(err)
	}
	if string(want.b) != string(p1.Encoded) {
		t.Error("prepared bytes differ from a fresh encoding")
	}
	// A new file (the directory's mtime changes) gives a new list.
	time.Sleep(10 * time.Millisecond)
	if err := os.WriteFile(filepath.Join(dir, "b", "new"), []byte("n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p3, err := c.Prepare(ctx, req, "k", noLinks, eo)
	if err != nil {
		t.Fatal(err)
	}
	if p3 == p1 || len(p3.Files) != len(p1.Files)+1 {
		t.Errorf("change not picked up: %d -> %d files", len(p1.Files), len(p3.Files))
	}
	// Only the module root can be prepared, and never with checksums.
	if _, err := c.Prepare(ctx, Request{Paths: []string{"a/"}, Protocol: 31}, "k2", nil, eo); err == nil {
		t.Error("subdirectory prepared")
	}
	eo.Checksum = func(*File) ([]byte, error) { return nil, nil }
	if _, err := c.Prepare(ctx, req, "k3", nil, eo); err == nil {
		t.Error("checksum list prepared")
	}
}

type bytesBuf struct{ b []byte }

func (w *bytesBuf) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }
