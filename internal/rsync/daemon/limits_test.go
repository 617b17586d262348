package daemon

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/config"
)

// waitSlotFree asks for module m until it is granted ("@RSYNCD: OK"), at
// most within; it fails the test otherwise.
func waitSlotFree(t *testing.T, ts *testServer, within time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		c := dialRaw(t, ts.addr)
		c.expectPrefix("@RSYNCD: ")
		c.send("@RSYNCD: 31.0\nm\n")
		l, err := c.line()
		c.conn.Close()
		if err == nil && l == "@RSYNCD: OK" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the module's only slot is still taken after %v: %q %v", what, within, l, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dialSmallWindow connects with a tiny receive buffer (set before the
// connection, so the advertised window stays small): a client that then
// stops reading blocks the server's writes soon.
func dialSmallWindow(t *testing.T, addr string) *rawClient {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		}); err != nil {
			return err
		}
		return serr
	}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	t.Cleanup(func() { conn.Close() })
	return &rawClient{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// smallSendBuf gives accepted connections a small send buffer.
type smallSendBuf struct{ net.Listener }

func (l smallSendBuf) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(8192)
	}
	return c, err
}

// Clients that stall in the handshake, before the filter list, or in the
// middle of the file list are cut after the handshake timeout (not the
// module's timeout, unset here) and give the module's only slot back.
func TestStalledClientsCutAndSlotFreed(t *testing.T) {
	dir := t.TempDir()
	// A file list (about 400 KB) far larger than the socket buffers: the
	// server's send buffer is kept small below, the client's receive
	// buffer too (dialSmallWindow).
	for f := range 2000 {
		name := fmt.Sprintf("p%04d-%s.ebuild", f, strings.Repeat("x", 200))
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m := mod("m", dir)
	m.MaxConnections = 1
	const hs = 700 * time.Millisecond
	ts := startServerWrapped(t, Config{Modules: []config.Module{m}, HandshakeTimeout: hs},
		func(ln net.Listener) net.Listener { return smallSendBuf{ln} })

	// grant connects with dial until the module's only slot is granted
	// (the previous subtest's probe may still hold it for a moment).
	grant := func(t *testing.T, dial func() *rawClient) *rawClient {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			c := dial()
			c.expectPrefix("@RSYNCD: ")
			c.send("@RSYNCD: 29.0\nm\n")
			l, err := c.line()
			if err == nil && l == "@RSYNCD: OK" {
				return c
			}
			c.conn.Close()
			if time.Now().After(deadline) {
				t.Fatalf("module not granted: %q %v", l, err)
			}
		}
	}
	plain := func() *rawClient { return dialRaw(t, ts.addr) }

	t.Run("handshake", func(t *testing.T) {
		// The module is granted, the arguments never come.
		c := grant(t, plain)
		c.send("--server\n") // then nothing
		waitSlotFree(t, ts, 15*time.Second, "stalled in the arguments")
	})
	t.Run("filter-list", func(t *testing.T) {
		// The arguments are complete; the client never sends its filter
		// list (the session waits to read it).
		c := grant(t, plain)
		c.send("--server\n--sender\n-r\n.\nm/\n\n")
		waitSlotFree(t, ts, 15*time.Second, "stalled before the filter list")
	})
	t.Run("mid-file-list", func(t *testing.T) {
		// The client sends an empty filter list and then reads nothing:
		// the server's writes of the file list block.
		c := grant(t, func() *rawClient { return dialSmallWindow(t, ts.addr) })
		c.send("--server\n--sender\n-r\n.\nm/\n\n\x00\x00\x00\x00")
		start := time.Now()
		deadline := start.Add(20 * time.Second)
		for !strings.Contains(ts.logs.String(), "send file list: mux: write payload: client stalled the session setup") {
			if time.Now().After(deadline) {
				t.Fatalf("a client not reading the file list was not cut within 20s (handshake timeout %v):\n%s", hs, ts.logs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		waitSlotFree(t, ts, 15*time.Second, "stalled in the file list")
	})
}

// --max-conns-per-client: a client address holding that many connections
// (in the handshake, here) is refused with an @ERROR naming the limit;
// others are not affected and the count goes down as connections end.
func TestMaxConnsPerClient(t *testing.T) {
	ts := startServer(t, Config{Modules: []config.Module{mod("m", t.TempDir())}, MaxConnsPerClient: 2})
	var held []*rawClient
	for range 2 {
		c := dialRaw(t, ts.addr)
		c.expectPrefix("@RSYNCD: ")
		held = append(held, c)
	}
	res := runRsync(t, rsyncTimeout, "-r", "rsync://127.0.0.1:"+ts.port+"/m/", t.TempDir())
	if res.err == nil || !strings.Contains(res.stderr, "@ERROR: max connections per client (2) reached -- try again later") {
		t.Fatalf("third connection from 127.0.0.1: want the per-client error, got %v %q", res.err, res.stderr)
	}
	// Another address (127.0.0.2 is loopback too) is not limited.
	if canBind("127.0.0.2") {
		c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}).Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		rc := &rawClient{t: t, conn: c}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		b := make([]byte, 64)
		n, _ := c.Read(b)
		if !strings.HasPrefix(string(b[:n]), "@RSYNCD: ") || strings.Contains(string(b[:n]), "@ERROR") {
			t.Fatalf("another address refused: %q", b[:n])
		}
		rc.conn.Close()
	}
	held[0].conn.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		res := runRsync(t, rsyncTimeout, "-r", "rsync://127.0.0.1:"+ts.port+"/m/", t.TempDir())
		if res.err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("per-client slot not given back: %v %s", res.err, res.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
