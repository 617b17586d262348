package contrib

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/lanmirror/lanmirror/internal/testutil"
)

// The logrotate snippet, pointed at a temporary log directory, rotates
// the access log of a running lanmirror: the old lines move to
// access.log.1 and the next requests land in access.log again.
func TestLogrotateRotatesLiveLog(t *testing.T) {
	requireRoot(t)
	logrotate := testutil.RequireTool(t, "logrotate")
	bin := lanmirrorBinary(t)
	uid, gid, group := nobody(t)

	snippet, err := os.ReadFile("logrotate/lanmirror")
	if err != nil {
		t.Fatal(err)
	}
	root := openDir(t)
	// The directories as the service creates them: owned by its user
	// (nobody here), which lanmirror runs as.
	logDir, data := filepath.Join(root, "log"), filepath.Join(root, "data")
	for _, d := range []string{logDir, data} {
		if err := os.Mkdir(d, 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(string(snippet), "/var/log/lanmirror/") || !strings.Contains(string(snippet), "su lanmirror lanmirror") {
		t.Fatalf("logrotate/lanmirror: expected /var/log/lanmirror/ and su lanmirror lanmirror:\n%s", snippet)
	}
	conf := strings.NewReplacer(
		"/var/log/lanmirror/", logDir+"/",
		"su lanmirror lanmirror", "su nobody "+group,
	).Replace(string(snippet))
	confPath := filepath.Join(root, "lanmirror.logrotate")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(root, "logrotate.state")

	// The syntax check as an admin runs it.
	if out, err := exec.Command(logrotate, "-d", "-s", state, confPath).CombinedOutput(); err != nil || strings.Contains(string(out), "error:") {
		t.Fatalf("logrotate -d: %v\n%s", err, out)
	}

	httpAddr := freeAddr(t)
	accessLog := filepath.Join(logDir, "access.log")
	cmd := exec.Command(bin, "serve", "--data", data, "--http", httpAddr, "--rsync", "", "--log", accessLog)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	var out testutil.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	waitListening(t, httpAddr, func() bool {
		select {
		case <-done:
			t.Logf("lanmirror exited:\n%s", out.String())
			return false
		default:
			return true
		}
	})
	get(t, "http://"+httpAddr+"/before-rotation")
	if _, err := waitFileContains(accessLog, "/before-rotation"); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(logrotate, "-f", "-s", state, confPath).CombinedOutput(); err != nil || strings.Contains(string(out), "error:") {
		t.Fatalf("logrotate -f: %v\n%s", err, out)
	}
	get(t, "http://"+httpAddr+"/after-rotation")
	if _, err := waitFileContains(accessLog, "/after-rotation"); err != nil {
		t.Fatal(err)
	}

	old, err := os.ReadFile(accessLog + ".1")
	if err != nil {
		t.Fatalf("no rotated log: %v", err)
	}
	cur, err := os.ReadFile(accessLog)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(old), "/before-rotation") || strings.Contains(string(old), "/after-rotation") {
		t.Errorf("access.log.1 should hold only the request before the rotation:\n%s", old)
	}
	if strings.Contains(string(cur), "/before-rotation") || !strings.Contains(string(cur), "/after-rotation") {
		t.Errorf("access.log should hold only the request after the rotation:\n%s", cur)
	}
	if strings.ContainsRune(string(cur), 0) {
		t.Errorf("access.log has NUL bytes after copytruncate (writes not in append mode):\n%q", cur)
	}
}
