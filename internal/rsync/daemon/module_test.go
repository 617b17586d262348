package daemon

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

func TestModuleFollowsSwitchedSymlink(t *testing.T) {
	base := t.TempDir()
	a, b := filepath.Join(base, "snap-a"), filepath.Join(base, "snap-b")
	writeFile(t, a, "which", "a")
	writeFile(t, b, "which", "b")
	cur := filepath.Join(base, "current")
	if err := os.Symlink("snap-a", cur); err != nil {
		t.Fatal(err)
	}
	m, err := newModule(mod("tree", cur), slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	read := func(tr *tree) string {
		t.Helper()
		d, err := tr.root.ReadFile("which")
		if err != nil {
			t.Fatal(err)
		}
		return string(d)
	}
	t1, err := m.acquire()
	if err != nil {
		t.Fatal(err)
	}
	t2, err := m.acquire()
	if err != nil {
		t.Fatal(err)
	}
	if t1 != t2 || t1.lists == nil || read(t1) != "a" {
		t.Fatal("sessions on one target must share one tree and cache")
	}
	// Publish snapshot b atomically, as the tree mirror does.
	tmp := filepath.Join(base, "current.tmp")
	if err := os.Symlink("snap-b", tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, cur); err != nil {
		t.Fatal(err)
	}
	t3, err := m.acquire()
	if err != nil {
		t.Fatal(err)
	}
	if t3 == t1 || t3.lists == t1.lists || read(t3) != "b" {
		t.Fatal("new sessions must get the new snapshot with a new cache")
	}
	// Old sessions keep reading their snapshot until they end.
	m.release(t1)
	if read(t2) != "a" {
		t.Fatal("old tree changed under a running session")
	}
	m.release(t2)
	if _, err := t2.root.Stat("which"); err == nil {
		t.Fatal("old root not closed after its last session")
	}
	m.release(t3)
	if _, err := t3.root.Stat("which"); err != nil {
		t.Fatal("current root closed while still current")
	}
	// A missing path is an error, not a crash; it recovers once present.
	if err := os.Remove(cur); err != nil {
		t.Fatal(err)
	}
	if _, err := m.acquire(); err == nil {
		t.Fatal("missing module path accepted")
	}
	m.close()
	if _, err := t3.root.Stat("which"); err == nil {
		t.Fatal("close left the current root open")
	}
}

func TestModuleFollowsDirectoryRenamedIntoPlace(t *testing.T) {
	base := t.TempDir()
	path := filepath.Join(base, "tree")
	writeFile(t, path, "which", "old")
	m, err := newModule(mod("tree", path), slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	t1, err := m.acquire()
	if err != nil {
		t.Fatal(err)
	}
	m.release(t1)
	next := filepath.Join(base, "tree.new")
	writeFile(t, next, "which", "new")
	if err := os.Rename(path, filepath.Join(base, "tree.old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, path); err != nil {
		t.Fatal(err)
	}
	t2, err := m.acquire()
	if err != nil {
		t.Fatal(err)
	}
	defer m.release(t2)
	if b, err := t2.root.ReadFile("which"); err != nil || string(b) != "new" {
		t.Fatalf("served %q %v, want the new directory", b, err)
	}
}
