package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/testutil"
)

// requireRoot: the privilege tests need root (the CI runs as root).
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testutil.MissingTool(t, "root (privilege drop tests)")
	}
}

// procIDs returns the real, effective, saved and filesystem uids (or
// gids) of a process from /proc.
func procIDs(t *testing.T, pid int, field string) string {
	t.Helper()
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, field+":") {
			return strings.Join(strings.Fields(l)[1:], " ")
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return ""
}

func ownerOf(t *testing.T, path string) (uid, gid int) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}

// serve --user nobody, started as root: the ports are bound, then the
// whole process runs as nobody (uids from /proc), the data directory and
// the access log it creates belong to nobody, and so do the cached files.
func TestServeUserDropsPrivileges(t *testing.T) {
	requireRoot(t)
	id, err := lookupIdentity("nobody", "")
	if err != nil {
		t.Fatal(err)
	}
	up := newHTUpstream(t)
	body := htData(200_000, 11)
	up.put("/distfiles/owned-1.tar.gz", body)
	work := worldReadableDir(t)
	data := filepath.Join(work, "data")
	accessLog := filepath.Join(work, "access.log")
	addr := htFreeAddr(t)
	p := startLanmirror(t, addr, "serve", "--user", "nobody", "--http", addr, "--rsync", "",
		"--data", data, "--log", accessLog, "--mirror", up.ts.URL)
	p.waitLog(t, "lanmirror serving")
	n := strconv.Itoa(id.uid)
	if got := procIDs(t, p.cmd.Process.Pid, "Uid"); got != strings.Join([]string{n, n, n, n}, " ") {
		t.Fatalf("uids %q, want all %s\n%s", got, n, p.out.String())
	}
	g := strconv.Itoa(id.gids[0])
	if got := procIDs(t, p.cmd.Process.Pid, "Gid"); got != strings.Join([]string{g, g, g, g}, " ") {
		t.Fatalf("gids %q, want all %s", got, g)
	}
	if got := procIDs(t, p.cmd.Process.Pid, "Groups"); got != "" {
		t.Fatalf("supplementary groups kept: %q", got)
	}
	resp, err := http.Get("http://" + addr + "/distfiles/owned-1.tar.gz")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, body) {
		t.Fatalf("GET: %d %v %d bytes\n%s", resp.StatusCode, err, len(got), p.out.String())
	}
	for _, path := range []string{data, accessLog, filepath.Join(data, "distfiles", "owned-1.tar.gz")} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := os.Stat(path); err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if uid, gid := ownerOf(t, path); uid != id.uid || gid != id.gids[0] {
			t.Errorf("%s owned by %d:%d, want %d:%d", path, uid, gid, id.uid, id.gids[0])
		}
	}
	p.signal(t, syscall.SIGTERM)
	if err := p.wait(t, 30*time.Second); err != nil {
		t.Fatalf("exit: %v\n%s", err, p.out.String())
	}
}

// Started as root without a user to run as: a clear error, unless
// --allow-root.
func TestServeRefusesRoot(t *testing.T) {
	requireRoot(t)
	addr := htFreeAddr(t)
	p := startLanmirror(t, "", "serve", "--http", addr, "--rsync", "", "--data", t.TempDir(), "--config", "")
	if err := p.wait(t, 30*time.Second); err == nil {
		t.Fatalf("serve as root without --user: exit 0\n%s", p.out.String())
	}
	for _, want := range []string{"refusing to run as root", "--user", "--allow-root"} {
		if !strings.Contains(p.out.String(), want) {
			t.Errorf("message lacks %q:\n%s", want, p.out.String())
		}
	}
	p = startLanmirror(t, addr, "serve", "--allow-root", "--http", addr, "--rsync", "", "--data", t.TempDir(), "--config", "")
	p.waitLog(t, "lanmirror serving")
	if got := procIDs(t, p.cmd.Process.Pid, "Uid"); got != "0 0 0 0" {
		t.Fatalf("--allow-root: uids %q", got)
	}
	p.signal(t, syscall.SIGTERM)
	if err := p.wait(t, 30*time.Second); err != nil {
		t.Fatalf("exit: %v\n%s", err, p.out.String())
	}
}
