package daemon

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/lanmirror/lanmirror/internal/dirlock"
	lmtree "github.com/lanmirror/lanmirror/internal/tree"
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
	read := func(tr *lease) string {
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
	if t1.tree != t2.tree || t1.lists == nil || read(t1) != "a" {
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
	if t3.tree == t1.tree || t3.lists == t1.lists || read(t3) != "b" {
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

// A session pins the snapshot it started on: the tree mirror's prune (a
// separate process in production; its own open file here, which flock
// treats alike) skips it until the session ends, then removes it.
func TestSessionPinsSnapshot(t *testing.T) {
	st, err := lmtree.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	publish := func(which string) lmtree.Snapshot {
		t.Helper()
		in, err := st.Begin()
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, in.Path, "which", which)
		s, err := in.Commit()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a := publish("a")
	m, err := newModule(mod("tree", st.CurrentPath()), slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	l, err := m.acquire()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dirlock.TryExclusive(a.Path); !errors.Is(err, dirlock.ErrBusy) {
		t.Fatalf("snapshot of a running session not pinned: %v", err)
	}
	b := publish("b")
	pr, err := st.Prune(1)
	if err != nil {
		t.Fatal(err)
	}
	if len(pr.Removed) != 0 || len(pr.Held) != 1 || pr.Held[0] != a.ID {
		t.Fatalf("prune during the session: %+v", pr)
	}
	if d, err := l.root.ReadFile("which"); err != nil || string(d) != "a" {
		t.Fatalf("session reads %q %v, want its snapshot a", d, err)
	}
	// A new session gets b.
	l2, err := m.acquire()
	if err != nil {
		t.Fatal(err)
	}
	if d, err := l2.root.ReadFile("which"); err != nil || string(d) != "b" {
		t.Fatalf("new session reads %q %v, want b", d, err)
	}
	m.release(l)
	pr, err = st.Prune(1)
	if err != nil || len(pr.Removed) != 1 || pr.Removed[0] != a.ID || len(pr.Held) != 0 {
		t.Fatalf("prune after the session: %+v %v", pr, err)
	}
	if _, err := os.Stat(a.Path); !os.IsNotExist(err) {
		t.Fatal("snapshot a not removed after its session")
	}
	if _, err := os.Stat(b.Path); err != nil {
		t.Fatal(err)
	}
	m.release(l2)
}
