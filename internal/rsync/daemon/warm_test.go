package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/config"
)

// warmTree writes a small tree for the warm-up tests.
func warmTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, p := range []string{"metadata/timestamp.chk", "app-misc/foo/foo-1.ebuild", "app-misc/foo/Manifest"} {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// scanned tells whether module name holds a scan of its tree.
func scanned(ts *testServer, name string) bool {
	m := ts.srv.modules[name]
	m.mu.Lock()
	cur := m.cur
	m.mu.Unlock()
	return cur != nil && cur.lists.Scanned()
}

// TestWarmupScansAtStart: the server scans each module when it starts,
// before any client asks (a module whose path is missing is skipped and
// still served once it appears); with NoWarmup it does not.
func TestWarmupScansAtStart(t *testing.T) {
	dir := warmTree(t)
	later := filepath.Join(t.TempDir(), "later")
	ts := startServer(t, Config{Modules: []config.Module{mod("gentoo", dir), mod("later", later)}})
	deadline := time.Now().Add(10 * time.Second)
	for !scanned(ts, "gentoo") {
		if time.Now().After(deadline) {
			t.Fatal("module not scanned at start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	res := runRsync(t, rsyncTimeout, "-r", "rsync://127.0.0.1:"+ts.port+"/gentoo/", t.TempDir()+"/")
	if res.err != nil {
		t.Fatalf("sync after warm-up: %v", res.err)
	}
	if err := os.Rename(warmTree(t), later); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if res := runRsync(t, rsyncTimeout, "-r", "rsync://127.0.0.1:"+ts.port+"/later/", dst+"/"); res.err != nil {
		t.Fatalf("module that appeared after the start: %v", res.err)
	}
	if _, err := os.Stat(filepath.Join(dst, "metadata", "timestamp.chk")); err != nil {
		t.Errorf("module that appeared after the start: %v", err)
	}

	cold := startServer(t, Config{Modules: []config.Module{mod("gentoo", dir)}, NoWarmup: true})
	res = runRsync(t, rsyncTimeout, "rsync://127.0.0.1:"+cold.port+"/")
	if res.err != nil || !strings.Contains(res.stdout, "gentoo") {
		t.Fatalf("module list: %v\n%s", res.err, res.stdout)
	}
	if scanned(cold, "gentoo") {
		t.Error("NoWarmup: module scanned before any client asked")
	}
}
