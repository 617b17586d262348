package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/testutil"
)

// SIGHUP reloads the config file into the running serve: a client the new
// allow list drops gets 403 while its download already in flight
// completes; a new mirror is used; the rsync modules change for new
// connections; the access log is reopened after logrotate moved it; a
// broken file keeps the running settings.
func TestServeSIGHUPReload(t *testing.T) {
	rsyncBin := testutil.RequireTool(t, "rsync")
	body := htData(250_000, 41)
	held := newHeldUpstream(t, body)
	second := newHTUpstream(t)
	fresh := htData(50_000, 42)
	second.put("/distfiles/fresh-1.tar.gz", fresh)

	dir := t.TempDir()
	treeA, treeB := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	writeTestFile(t, treeA, "from-a", "a\n", 0o644)
	writeTestFile(t, treeB, "from-b", "b\n", 0o644)
	httpAddr := htFreeAddr(t)
	rsyncAddr := "127.0.0.1:" + freeLoopbackPort(t)
	accessLog := filepath.Join(dir, "access.log")
	file := filepath.Join(dir, "lanmirror.toml")
	write := func(allow, mirror, module, path string) {
		t.Helper()
		text := fmt.Sprintf("data = %q\nhttp = %q\nrsync = %q\nlog = %q\nallow-root = true\nallow = [%q]\nmirror = [%q]\n\n[[module]]\nname = %q\npath = %q\nuse-chroot = false\n",
			filepath.Join(dir, "data"), httpAddr, rsyncAddr, accessLog, allow, mirror, module, path)
		if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("127.0.0.1/32", held.ts.URL, "mod-a", treeA)
	p := startLanmirror(t, httpAddr, "serve", "--config", file)
	p.waitLog(t, "lanmirror serving")
	modules := func() string {
		t.Helper()
		out, err := exec.Command(rsyncBin, "--timeout=30", "rsync://"+rsyncAddr+"/").CombinedOutput()
		if err != nil {
			t.Fatalf("rsync module list: %v\n%s\n%s", err, out, p.out.String())
		}
		return string(out)
	}
	if got := modules(); !strings.Contains(got, "mod-a") {
		t.Fatalf("modules before reload: %q", got)
	}
	// A download in flight when the allow list changes.
	inflight := startHeldGet(t, "http://"+httpAddr+"/distfiles/held-1.tar.gz")

	os.Rename(accessLog, accessLog+".1") // logrotate
	write("10.0.0.0/8", second.ts.URL, "mod-b", treeB)
	p.signal(t, syscall.SIGHUP)
	p.waitLog(t, "configuration reloaded")

	resp, err := http.Get("http://" + httpAddr + "/distfiles/fresh-1.tar.gz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("after reload, client outside the new allow list: %d, want 403", resp.StatusCode)
	}
	held.let()
	select {
	case b := <-inflight:
		if !bytes.Equal(b, body) {
			t.Fatalf("in-flight download: %d bytes, want %d intact", len(b), len(body))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("in-flight download did not complete after the reload")
	}
	if got := modules(); !strings.Contains(got, "mod-b") || strings.Contains(got, "mod-a") {
		t.Fatalf("modules after reload: %q", got)
	}
	dst := t.TempDir()
	if out, err := exec.Command(rsyncBin, "-a", "--timeout=30", "rsync://"+rsyncAddr+"/mod-b/", dst+"/").CombinedOutput(); err != nil {
		t.Fatalf("rsync mod-b: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dst, "from-b")); err != nil {
		t.Fatalf("mod-b content: %v", err)
	}

	// Loopback allowed again, and the new mirror serves a new file.
	write("127.0.0.0/8", second.ts.URL, "mod-b", treeB)
	p.signal(t, syscall.SIGHUP)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err = http.Get("http://" + httpAddr + "/distfiles/fresh-1.tar.gz")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			if !bytes.Equal(got, fresh) || second.count("/distfiles/fresh-1.tar.gz") != 1 {
				t.Fatalf("from the reloaded mirror: %d bytes, %d upstream GETs", len(got), second.count("/distfiles/fresh-1.tar.gz"))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %d after allowing loopback again\n%s", resp.StatusCode, p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The access log was reopened: the new file has the later requests.
	logged, err := os.ReadFile(accessLog)
	if err != nil || !bytes.Contains(logged, []byte("fresh-1.tar.gz")) {
		t.Fatalf("reopened access log: %v\n%s", err, logged)
	}

	// A broken file is refused; the running settings stay.
	os.WriteFile(file, []byte("allow = [\"10.0.0.0/8\"]\nbogus = 1\n"), 0o644)
	p.signal(t, syscall.SIGHUP)
	p.waitLog(t, "configuration not loaded")
	resp, err = http.Get("http://" + httpAddr + "/distfiles/fresh-1.tar.gz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("after a broken reload: %d, want the old allow list kept", resp.StatusCode)
	}
	p.signal(t, syscall.SIGTERM)
	if err := p.wait(t, 40*time.Second); err != nil {
		t.Fatalf("exit: %v\n%s", err, p.out.String())
	}
}
