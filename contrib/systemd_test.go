package contrib

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/testutil"
)

// systemd-analyze verify accepts the unit without a single warning, and
// the hardening the README promises is in it.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze := testutil.RequireTool(t, "systemd-analyze")
	bin := lanmirrorBinary(t)
	unit, err := os.ReadFile("systemd/lanmirror.service")
	if err != nil {
		t.Fatal(err)
	}
	// verify checks that ExecStart's program exists: point it at the
	// test binary.
	if !strings.Contains(string(unit), "ExecStart=/usr/bin/lanmirror ") {
		t.Fatal("systemd/lanmirror.service: ExecStart does not run /usr/bin/lanmirror")
	}
	copyPath := filepath.Join(t.TempDir(), "lanmirror.service")
	if err := os.WriteFile(copyPath, []byte(strings.ReplaceAll(string(unit), "/usr/bin/lanmirror", bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", copyPath).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}

	// systemd's own rating of the sandbox: 0 (locked down) to 10.
	out, err = exec.Command(analyze, "security", "--offline=yes", "--no-pager", copyPath).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for lanmirror.service: (\d+\.\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security gives no exposure level:\n%s", out)
	}
	if level, _ := strconv.ParseFloat(string(m[1]), 64); level > 2.0 {
		t.Errorf("exposure level %.1f, want at most 2.0:\n%s", level, out)
	}

	v := unitValues(t, "systemd/lanmirror.service")
	for key, want := range map[string]string{
		"Service.ProtectSystem":       "strict",
		"Service.ProtectHome":         "yes",
		"Service.PrivateTmp":          "yes",
		"Service.NoNewPrivileges":     "yes",
		"Service.AmbientCapabilities": "CAP_NET_BIND_SERVICE",
		"Service.User":                "lanmirror",
		"Service.ReadWritePaths":      "/var/cache/lanmirror /var/log/lanmirror",
		"Install.WantedBy":            "multi-user.target",
	} {
		if got := v[key]; len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	// The sysusers snippet creates the User= of the unit.
	sysusers, err := os.ReadFile("systemd/lanmirror.sysusers")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(sysusers), "\nu lanmirror ") {
		t.Errorf("systemd/lanmirror.sysusers does not create user lanmirror:\n%s", sysusers)
	}
}

// The unit's ExecStart, with its default LANMIRROR_OPTS replaced by
// loopback test settings and its paths moved to a temporary directory,
// starts a lanmirror that serves HTTP and rsync and ends on the unit's
// KillSignal within TimeoutStopSec; ExecReload reopens the access log.
func TestSystemdExecStartServes(t *testing.T) {
	rsync := testutil.RequireTool(t, "rsync")
	bin := lanmirrorBinary(t)
	v := unitValues(t, "systemd/lanmirror.service")
	execStart := v["Service.ExecStart"]
	if len(execStart) != 1 {
		t.Fatalf("ExecStart = %q, want one line", execStart)
	}
	if ks := v["Service.KillSignal"]; len(ks) != 1 || ks[0] != "SIGTERM" {
		t.Fatalf("KillSignal = %q: the test sends SIGTERM", ks)
	}
	timeout, err := time.ParseDuration(v["Service.TimeoutStopSec"][0] + "s")
	if err != nil {
		t.Fatalf("TimeoutStopSec: %v", err)
	}
	// systemd starts it as User= (nobody here, when the test runs as
	// root) with CacheDirectory= and LogsDirectory= created owned by it.
	var cred *syscall.Credential
	uid, gid := os.Getuid(), os.Getgid()
	if os.Geteuid() == 0 {
		u, g, _ := nobody(t)
		uid, gid = u, g
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	root := openDir(t)
	tree := filepath.Join(root, "tree")
	if err := os.Mkdir(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"cache", "log"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(filepath.Join(root, d), uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	httpAddr, rsyncAddr := freeAddr(t), freeAddr(t)
	opts := "--http " + httpAddr + " --rsync " + rsyncAddr + " --rsync-module test=" + tree
	line := strings.NewReplacer(
		"/usr/bin/lanmirror", bin,
		"/var/cache/lanmirror", filepath.Join(root, "cache"),
		"/var/log/lanmirror", filepath.Join(root, "log"),
		"$LANMIRROR_OPTS", opts,
	).Replace(execStart[0])
	args := strings.Fields(line)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
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
	alive := func() bool {
		select {
		case <-done:
			t.Logf("lanmirror exited:\n%s", out.String())
			return false
		default:
			return true
		}
	}
	waitListening(t, httpAddr, alive)
	waitListening(t, rsyncAddr, alive)
	if code, body := get(t, "http://"+httpAddr+"/"); code != 200 || !strings.Contains(body, "lanmirror") {
		t.Errorf("status page: %d %q", code, body)
	}
	if list := rsyncList(t, rsync, rsyncAddr); !strings.Contains(list, "test") {
		t.Errorf("rsync module list lacks module test:\n%s", list)
	}
	if _, err := waitFileContains(filepath.Join(root, "log", "access.log"), `GET "/"`); err != nil {
		t.Errorf("access log in LogsDirectory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "cache", "distfiles")); err != nil {
		t.Errorf("the cache is not in CacheDirectory: %v", err)
	}
	// ExecReload (systemctl reload lanmirror): the access log, moved away
	// as logrotate would, is reopened and the server keeps serving.
	reload := v["Service.ExecReload"]
	if len(reload) != 1 {
		t.Fatalf("ExecReload = %q, want one line", reload)
	}
	accessLog := filepath.Join(root, "log", "access.log")
	if err := os.Rename(accessLog, accessLog+".1"); err != nil {
		t.Fatal(err)
	}
	rargs := strings.Fields(strings.ReplaceAll(reload[0], "$MAINPID", strconv.Itoa(cmd.Process.Pid)))
	if out, err := exec.Command(rargs[0], rargs[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("ExecReload %q: %v\n%s", reload[0], err, out)
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		if code, _ := get(t, "http://"+httpAddr+"/after-reload"); code != 404 {
			t.Fatalf("after reload: %d", code)
		}
		if b, err := os.ReadFile(accessLog); err == nil && strings.Contains(string(b), "/after-reload") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new access log 20 s after ExecReload:\n%s", out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		if !cmd.ProcessState.Success() {
			t.Errorf("lanmirror ended with %v on SIGTERM:\n%s", cmd.ProcessState, out.String())
		}
	case <-time.After(timeout):
		t.Fatalf("lanmirror still runs %v (TimeoutStopSec) after SIGTERM", timeout)
	}
}
