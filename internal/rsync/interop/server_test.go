package interop

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/testutil"
)

// serverKind names an rsync daemon implementation.
type serverKind string

const (
	// kindLanmirror is lanmirror serve --rsync, the server under test.
	kindLanmirror serverKind = "lanmirror"
	// kindStock is stock rsync --daemon, the reference.
	kindStock serverKind = "rsyncd"
)

// serverKinds returns the kinds the suite runs against: both by default;
// LANMIRROR_INTEROP_SERVERS=lanmirror (or rsyncd) narrows it.
func serverKinds() []serverKind {
	env := os.Getenv("LANMIRROR_INTEROP_SERVERS")
	if env == "" {
		return []serverKind{kindLanmirror, kindStock}
	}
	var out []serverKind
	for _, k := range strings.Split(env, ",") {
		out = append(out, serverKind(strings.TrimSpace(k)))
	}
	return out
}

// forEachServer runs f as one subtest per server kind, in parallel with
// the other top-level tests. The same test body runs against stock rsyncd
// (proving the test and harness right) and against lanmirror (the finding
// when it fails).
func forEachServer(t *testing.T, f func(t *testing.T, kind serverKind)) {
	t.Helper()
	needRsync(t)
	// Top-level tests run side by side: much of their time is spent
	// waiting (timeouts, --bwlimit, treeSettle), not computing.
	t.Parallel()
	for _, kind := range serverKinds() {
		t.Run(string(kind), func(t *testing.T) { f(t, kind) })
	}
}

// module is one rsyncd.conf module section.
type module struct {
	name, path, comment string
	exclude             []string // server-side "exclude"
	hostsAllow          []string
	hostsDeny           []string
	maxConnections      int
	timeout             int  // "timeout" in seconds; 0: none
	unlisted            bool // list = no
}

// serverConf is what a test server serves.
type serverConf struct {
	modules []module
	motd    string // text of the motd file; "" for none
	// raw, when set, is the whole rsyncd.conf, used as it is.
	raw string
	// host is the loopback address to listen on; "" means 127.0.0.1.
	host string
}

// server is a running daemon started by a test.
type server struct {
	kind serverKind
	addr string // 127.0.0.1:PORT
	dir  string // its config and state
	cmd  *exec.Cmd
	out  *lockedBuffer // its stdout and stderr
}

// url returns rsync://ADDR/ followed by p.
func (s *server) url(p string) string { return "rsync://" + s.addr + "/" + p }

// lockedBuffer collects output that goroutines write while the test reads it.
type lockedBuffer = testutil.Buffer

// rsyncdConf renders conf as an rsyncd.conf for kind.
func rsyncdConf(kind serverKind, dir string, conf serverConf) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# written by the lanmirror interop suite for %s\n", kind)
	if kind == kindStock {
		// Keep stock rsyncd out of syslog, /var/run and DNS, and make it
		// send symlinks unchanged.
		fmt.Fprintf(&b, "use chroot = no\nmunge symlinks = no\nreverse lookup = no\n")
		fmt.Fprintf(&b, "lock file = %s\nlog file = %s\n", filepath.Join(dir, "rsyncd.lock"), filepath.Join(dir, "rsyncd.log"))
		if os.Geteuid() == 0 {
			fmt.Fprintf(&b, "uid = 0\ngid = 0\n")
		}
	}
	if conf.motd != "" {
		fmt.Fprintf(&b, "motd file = %s\n", filepath.Join(dir, "motd"))
	}
	for _, m := range conf.modules {
		fmt.Fprintf(&b, "\n[%s]\n\tpath = %s\n\tread only = yes\n", m.name, m.path)
		if m.comment != "" {
			fmt.Fprintf(&b, "\tcomment = %s\n", m.comment)
		}
		if len(m.exclude) > 0 {
			fmt.Fprintf(&b, "\texclude = %s\n", strings.Join(m.exclude, " "))
		}
		if len(m.hostsAllow) > 0 {
			fmt.Fprintf(&b, "\thosts allow = %s\n", strings.Join(m.hostsAllow, " "))
		}
		if len(m.hostsDeny) > 0 {
			fmt.Fprintf(&b, "\thosts deny = %s\n", strings.Join(m.hostsDeny, " "))
		}
		if m.maxConnections > 0 {
			fmt.Fprintf(&b, "\tmax connections = %d\n", m.maxConnections)
		}
		if m.timeout > 0 {
			fmt.Fprintf(&b, "\ttimeout = %d\n", m.timeout)
		}
		if m.unlisted {
			fmt.Fprintf(&b, "\tlist = no\n")
		}
	}
	return b.String()
}

// startServer starts a daemon of kind serving conf on a free loopback
// port, waits until it greets, and stops it (by PID) when the test ends.
func startServer(t *testing.T, kind serverKind, conf serverConf) *server {
	t.Helper()
	if kind == kindLanmirror && lanmirrorBin == "" {
		t.Fatalf("lanmirror binary not built: %v", buildErr)
	}
	dir := t.TempDir()
	if conf.motd != "" {
		if err := os.WriteFile(filepath.Join(dir, "motd"), []byte(conf.motd), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	confPath := filepath.Join(dir, "rsyncd.conf")
	text := conf.raw
	if text == "" {
		text = rsyncdConf(kind, dir, conf)
	}
	if err := os.WriteFile(confPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	host := conf.host
	if host == "" {
		host = "127.0.0.1"
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort(host)
		if err != nil {
			t.Fatal(err)
		}
		s := &server{kind: kind, addr: net.JoinHostPort(host, fmt.Sprint(port)), dir: dir, out: &lockedBuffer{}}
		switch kind {
		case kindLanmirror:
			data := filepath.Join(dir, "data")
			s.cmd = exec.Command(lanmirrorBin, "serve", "--allow-root", "--data", data, "--http", "",
				"--rsync", s.addr, "--rsyncd-conf", confPath)
		case kindStock:
			s.cmd = exec.Command(rsyncBin, "--daemon", "--no-detach", "--config="+confPath,
				"--address="+host, fmt.Sprintf("--port=%d", port))
		default:
			t.Fatalf("unknown server kind %q", kind)
		}
		s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
		dieWithTest(s.cmd)
		if err := s.cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", kind, err)
		}
		exited := make(chan error, 1)
		go func() { exited <- s.cmd.Wait() }()
		if err := waitGreeting(s.addr, exited, 15*time.Second); err != nil {
			stopProcess(s.cmd, exited)
			lastErr = fmt.Errorf("%s on %s: %w\n%s", kind, s.addr, err, s.out.String())
			continue // most likely a port taken between freePort and bind
		}
		t.Cleanup(func() {
			stopProcess(s.cmd, exited)
			if t.Failed() {
				t.Logf("%s server output:\n%s", kind, tail(s.out.String(), 4000))
				if kind == kindStock {
					if b, err := os.ReadFile(filepath.Join(dir, "rsyncd.log")); err == nil {
						t.Logf("rsyncd log:\n%s", tail(string(b), 4000))
					}
				}
			}
		})
		return s
	}
	t.Fatalf("could not start %s: %v", kind, lastErr)
	return nil
}

// freePort returns a port on the loopback address host that was free a
// moment ago.
func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitGreeting polls addr until a daemon answers with an @RSYNCD greeting,
// the process exits, or the time is up.
func waitGreeting(addr string, exited <-chan error, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("server exited: %v", err)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			line, rerr := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if rerr == nil && strings.HasPrefix(line, "@RSYNCD: ") {
				return nil
			}
			if rerr == nil {
				return fmt.Errorf("unexpected greeting %q", line)
			}
		}
		time.Sleep(30 * time.Millisecond)
	}
	return errors.New("no greeting in time")
}

// stopProcess ends a process this test started: SIGTERM, then SIGKILL.
func stopProcess(cmd *exec.Cmd, exited <-chan error) {
	if cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		return
	case <-time.After(3 * time.Second):
	}
	_ = cmd.Process.Kill()
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
	}
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// rsyncResult is one finished client run.
type rsyncResult struct {
	args           []string
	stdout, stderr string
	code           int // exit status; -1 when killed
}

// String describes the run for failure messages.
func (r *rsyncResult) String() string {
	return fmt.Sprintf("rsync %s\nexit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code,
		tail(r.stdout, 3000), tail(r.stderr, 3000))
}

// rsyncCmd runs the stock rsync client with args under a deadline.
func rsyncCmd(t *testing.T, args ...string) *rsyncResult {
	t.Helper()
	return rsyncCmdTimeout(t, 90*time.Second, args...)
}

// rsyncCmdTimeout is rsyncCmd with its own deadline.
func rsyncCmdTimeout(t *testing.T, limit time.Duration, args ...string) *rsyncResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, rsyncBin, args...)
	cmd.Env = clientEnv()
	cmd.WaitDelay = 5 * time.Second
	dieWithTest(cmd)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := &rsyncResult{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		r.code = -1
		t.Errorf("rsync did not finish within %v (hang):\n%s", limit, r)
	case errors.As(err, &exitErr):
		r.code = exitErr.ExitCode()
	default: // (Errorf, not Fatalf: callers may run in goroutines)
		r.code = -1
		t.Errorf("run rsync: %v", err)
	}
	return r
}

// mustRsync runs rsync and fails the test unless it exits 0.
func mustRsync(t *testing.T, args ...string) *rsyncResult {
	t.Helper()
	r := rsyncCmd(t, args...)
	if r.code != 0 {
		t.Fatalf("rsync failed:\n%s", r)
	}
	return r
}

// clientEnv is the client's environment: UTF-8 names printed as they are,
// dates in UTC, and no RSYNC_* variables from the caller's environment.
func clientEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RSYNC_") && !strings.HasPrefix(kv, "LC_") && !strings.HasPrefix(kv, "TZ=") {
			env = append(env, kv)
		}
	}
	return append(env, "LC_ALL=C.UTF-8", "TZ=UTC")
}
