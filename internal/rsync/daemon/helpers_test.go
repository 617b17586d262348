package daemon

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/config"
	"github.com/lanmirror/lanmirror/internal/testutil"
)

// testServer is a daemon running in-process on 127.0.0.1.
type testServer struct {
	srv  *Server
	addr string // host:port
	port string
	logs *lockedBuffer
}

// lockedBuffer is a log sink safe for concurrent writes.
type lockedBuffer struct {
	mu chan struct{}
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu <- struct{}{}
	defer func() { <-l.mu }()
	return l.b.Write(p)
}

// String returns what was written so far.
func (l *lockedBuffer) String() string {
	l.mu <- struct{}{}
	defer func() { <-l.mu }()
	return l.b.String()
}

// startServer runs a Server for cfg until the test ends; Serve must
// return once the test's context is cancelled.
func startServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	return startServerWrapped(t, cfg, nil)
}

// startServerWrapped is startServer with the listener wrapped by wrap
// (when not nil).
func startServerWrapped(t *testing.T, cfg Config, wrap func(net.Listener) net.Listener) *testServer {
	t.Helper()
	lb := &lockedBuffer{mu: make(chan struct{}, 1)}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(lb, testWriter{t}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if wrap != nil {
		ln = wrap(ln)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	_, port, _ := net.SplitHostPort(addr)
	return &testServer{srv: srv, addr: addr, port: port, logs: lb}
}

// testWriter sends log output to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// rsyncResult is the outcome of one stock rsync run.
type rsyncResult struct {
	stdout, stderr string
	err            error
}

// runRsync runs the stock rsync client with a deadline.
func runRsync(t *testing.T, timeout time.Duration, args ...string) rsyncResult {
	t.Helper()
	testutil.RequireTool(t, "rsync")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "rsync", args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "RSYNC_PASSWORD=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("rsync %s: timed out after %v (stderr: %s)", strings.Join(args, " "), timeout, errb.String())
	}
	t.Logf("rsync %s: err=%v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out.String(), errb.String())
	return rsyncResult{out.String(), errb.String(), err}
}

// rawClient speaks the daemon protocol by hand.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { conn.Close() })
	return &rawClient{t: t, conn: conn, r: bufio.NewReader(conn)}
}

func (c *rawClient) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatal(err)
	}
}

// line reads one server line; "" with io.EOF at the end.
func (c *rawClient) line() (string, error) {
	s, err := c.r.ReadString('\n')
	if err != nil {
		return s, err
	}
	return strings.TrimSuffix(s, "\n"), nil
}

func (c *rawClient) expect(want string) {
	c.t.Helper()
	got, err := c.line()
	if err != nil || got != want {
		c.t.Fatalf("server line = %q, %v; want %q", got, err, want)
	}
}

// expectPrefix reads one line and checks its beginning.
func (c *rawClient) expectPrefix(want string) string {
	c.t.Helper()
	got, err := c.line()
	if err != nil || !strings.HasPrefix(got, want) {
		c.t.Fatalf("server line = %q, %v; want prefix %q", got, err, want)
	}
	return got
}

// expectEOF checks that the server closes the connection.
func (c *rawClient) expectEOF() {
	c.t.Helper()
	rest, err := io.ReadAll(c.r)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.t.Fatalf("server did not close the connection (got %q)", rest)
		}
	}
	if len(rest) != 0 {
		c.t.Fatalf("unexpected data before close: %q", rest)
	}
}

// writeFile creates a file (and its directories) below dir.
func writeFile(t *testing.T, dir, rel, content string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// module is a shorthand for a read-only listed module.
func mod(name, path string) config.Module {
	return config.Module{Name: name, Path: path, ReadOnly: true, UseChroot: true, List: true}
}
