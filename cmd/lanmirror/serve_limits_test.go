package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/config"
)

// htDialSmall connects to addr with a small receive buffer (set before
// connecting, so that the window stays small): a client that stops
// reading soon blocks the server's writes.
func htDialSmall(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitClosed reads from c until the server closes it, at most within; it
// fails the test if the connection is still open then.
func waitClosed(t *testing.T, c net.Conn, within time.Duration, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(within))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if err != nil && (errorAs(err, &ne) && ne.Timeout()) {
		t.Fatalf("%s: connection still open after %v", what, within)
	}
}

func errorAs(err error, target *net.Error) bool {
	ne, ok := err.(net.Error)
	if ok {
		*target = ne
	}
	return ok
}

// A client that never reads the answer to a distfile it made lanmirror
// download is cut after --http-write-timeout; the download goes on and
// another client gets the whole file, with one upstream GET.
func TestHTTPNonReadingClientDoesNotHoldTheDownload(t *testing.T) {
	up := newHTUpstream(t)
	data := htData(6<<20, 21)
	up.put("/distfiles/stall-1.tar.gz", data)
	up.slow.Store(true) // about 3 MB/s: the download outlives the stall
	srv := startHTTPComponent(t, &config.Serve{Mirrors: []string{up.ts.URL}, HTTPWriteTimeout: 500 * time.Millisecond})
	addr := strings.TrimPrefix(srv.url, "http://")

	stalled := htDialSmall(t, addr)
	start := time.Now()
	fmt.Fprintf(stalled, "GET /distfiles/stall-1.tar.gz HTTP/1.1\r\nHost: x\r\n\r\n")
	// The download has started; now a client that reads.
	for up.count("/distfiles/stall-1.tar.gz") == 0 && time.Since(start) < 10*time.Second {
		time.Sleep(10 * time.Millisecond)
	}
	dir := t.TempDir()
	r := htRun(t, dir, nil, "wget", "--no-config", "-t", "1", "-O", "out", srv.url+"/distfiles/stall-1.tar.gz")
	if r.code != 0 {
		t.Fatalf("wget: exit %d\n%s", r.code, r.out)
	}
	if got := htReadFile(t, filepath.Join(dir, "out")); len(got) != len(data) || string(got) != string(data) {
		t.Fatalf("wget got %d bytes, want %d identical", len(got), len(data))
	}
	if c := up.count("/distfiles/stall-1.tar.gz"); c != 1 {
		t.Fatalf("upstream GETs = %d, want 1", c)
	}
	// The stalled client was cut: its request is logged with fewer bytes.
	want := `GET "/distfiles/stall-1.tar.gz" 200 `
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var lines []string
		for _, l := range strings.Split(srv.access.String(), "\n") {
			if strings.Contains(l, want) {
				lines = append(lines, l)
			}
		}
		partial := 0
		for _, l := range lines {
			if !strings.Contains(l, fmt.Sprintf(" 200 %d ", len(data))) {
				partial++
			}
		}
		if len(lines) == 2 && partial == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the non-reading client was not cut within 30s (write timeout 500ms):\n%s", srv.access.String())
		}
	}
	waitClosed(t, stalled, 10*time.Second, "non-reading client")
}

// A client trickling its request headers (slowloris) is disconnected
// after --http-header-timeout.
func TestHTTPSlowlorisCut(t *testing.T) {
	srv := startHTTPComponent(t, &config.Serve{HTTPHeaderTimeout: 500 * time.Millisecond})
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(srv.url, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	fmt.Fprintf(c, "GET /distfiles/layout.conf HTTP/1.1\r\nHost: x\r\n")
	closed := false
	for i := 0; time.Since(start) < 10*time.Second; i++ {
		time.Sleep(100 * time.Millisecond)
		if _, err := fmt.Fprintf(c, "X-Trickle-%d: y\r\n", i); err != nil {
			closed = true
			break
		}
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		var b [512]byte
		if _, err := c.Read(b[:]); err != nil {
			var ne net.Error
			if !(errorAs(err, &ne) && ne.Timeout()) {
				closed = true
				break
			}
		}
	}
	if !closed {
		t.Fatalf("slowloris connection still open after %v (header timeout 500ms)", time.Since(start))
	}
}

// --max-conns-per-client: connections beyond the limit from one address
// are answered 503 and closed; a freed connection makes room again.
func TestHTTPMaxConnsPerClient(t *testing.T) {
	srv := startHTTPComponent(t, &config.Serve{MaxConnsPerClient: 2})
	addr := strings.TrimPrefix(srv.url, "http://")
	var held []net.Conn
	for range 2 {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	// Both held connections are served (and kept alive).
	for _, c := range held {
		fmt.Fprintf(c, "GET /distfiles/layout.conf HTTP/1.1\r\nHost: x\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("held connection: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	dir := t.TempDir()
	r := htRun(t, dir, nil, "curl", "-sS", "-o", "body", "-w", "%{http_code}", srv.url+"/distfiles/layout.conf")
	if !strings.HasSuffix(r.out, "503") {
		t.Fatalf("third connection: want 503, got exit %d %q", r.code, r.out)
	}
	if b := string(htReadFile(t, filepath.Join(dir, "body"))); !strings.Contains(b, "max connections per client (2) reached") {
		t.Fatalf("503 body: %q", b)
	}
	held[0].Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r := htRun(t, dir, nil, "curl", "-sS", "-o", "body", "-w", "%{http_code}", srv.url+"/distfiles/layout.conf")
		if strings.HasSuffix(r.out, "200") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not given back after a connection closed: %q", r.out)
		}
	}
}
