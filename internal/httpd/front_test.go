package httpd

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/acl"
	"github.com/lanmirror/lanmirror/internal/distcache"
	"github.com/lanmirror/lanmirror/internal/testutil"
)

// serveFront runs srv on loopback as lanmirror serve does: net/http with
// the server's timeouts behind the front (Listener).
func serveFront(t testing.TB, srv *Server) *httptest.Server {
	t.Helper()
	ts := httptest.NewUnstartedServer(srv)
	ts.Config = srv.HTTPServer(nil)
	ts.Listener = srv.Listener(ts.Listener)
	ts.Start()
	return ts
}

// frontEnv is a Server on a real cache holding small distfiles, served
// twice: through the front (front) and by net/http alone (plain).
type frontEnv struct {
	srv    *Server
	front  *httptest.Server
	plain  *httptest.Server
	files  map[string][]byte
	access *testutil.Buffer
}

func newFrontEnv(t *testing.T, opt Options) *frontEnv {
	t.Helper()
	e := &frontEnv{files: map[string][]byte{
		"small.tar.gz":    testData(40<<10, 5),
		"patch-1.2.patch": testData(700, 6),
		"empty.txt":       {},
	}, access: &testutil.Buffer{}}
	c, _ := cacheOf(t, e.files, time.Date(2025, 5, 1, 8, 0, 0, 0, time.UTC))
	opt.Cache = FromDistcache(c)
	opt.AccessLog = e.access
	var err error
	if e.srv, err = New(opt); err != nil {
		t.Fatal(err)
	}
	e.front = serveFront(t, e.srv)
	e.plain = httptest.NewServer(e.srv)
	t.Cleanup(func() {
		e.front.Close()
		e.plain.Close()
		e.srv.Close()
	})
	// The first request of each file reads it into memory (through
	// net/http); the front answers the later ones.
	for n := range e.files {
		resp, err := http.Get(e.plain.URL + "/distfiles/" + n)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return e
}

// cacheOf returns a cache engine on a new store holding files as cached
// distfiles, modified at mod; both are closed when t ends.
func cacheOf(t *testing.T, files map[string][]byte, mod time.Time) (*distcache.Cache, *distcache.Store) {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "distfiles"), 0o755)
	for n, d := range files {
		p := filepath.Join(dir, "distfiles", n)
		os.WriteFile(p, d, 0o644)
		os.Chtimes(p, mod, mod)
	}
	st, err := distcache.OpenStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c, err := distcache.New(distcache.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, st
}

// exchange sends raw (one or more requests) on a new connection to ts,
// reads n answers and returns them with their bodies.
func exchange(t *testing.T, ts *httptest.Server, raw string, n int, head bool) ([]*http.Response, [][]byte) {
	t.Helper()
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	var resps []*http.Response
	var bodies [][]byte
	for range n {
		req := &http.Request{Method: http.MethodGet}
		if head {
			req.Method = http.MethodHead
		}
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			t.Fatalf("answer %d of %q: %v", len(resps)+1, raw, err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("body %d of %q: %v", len(resps)+1, raw, err)
		}
		resp.Body.Close()
		resps = append(resps, resp)
		bodies = append(bodies, body)
	}
	return resps, bodies
}

// sameAnswer fails unless a and b have the same status, headers (Date
// aside) and body.
func sameAnswer(t *testing.T, what string, a, b *http.Response, ab, bb []byte) {
	t.Helper()
	if a.StatusCode != b.StatusCode || !bytes.Equal(ab, bb) {
		t.Fatalf("%s: front %d (%d bytes), net/http %d (%d bytes)", what, a.StatusCode, len(ab), b.StatusCode, len(bb))
	}
	keys := func(h http.Header) []string {
		var ks []string
		for k, v := range h {
			if k != "Date" {
				ks = append(ks, k+": "+strings.Join(v, ", "))
			}
		}
		slices.Sort(ks)
		return ks
	}
	if ka, kb := keys(a.Header), keys(b.Header); !slices.Equal(ka, kb) {
		t.Fatalf("%s: headers differ\nfront:    %q\nnet/http: %q", what, ka, kb)
	}
	if (a.Header.Get("Date") == "") != (b.Header.Get("Date") == "") {
		t.Fatalf("%s: Date %q, net/http's %q", what, a.Header.Get("Date"), b.Header.Get("Date"))
	}
}

// TestFrontAnswersAsNetHTTP: every request, plain or not, gets from the
// front the answer net/http alone gives (status, headers, body); the plain
// ones are answered by the front itself, the others handed on.
func TestFrontAnswersAsNetHTTP(t *testing.T) {
	e := newFrontEnv(t, Options{})
	hashed := "/distfiles/" + hashDir("small.tar.gz") + "/small.tar.gz"
	cases := []struct {
		raw   string
		front bool // answered by the front itself
	}{
		{"GET /distfiles/small.tar.gz HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"GET " + hashed + " HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"HEAD /distfiles/small.tar.gz HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"GET /distfiles/patch-1.2.patch HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nConnection: close\r\n\r\n", true},
		{"GET /distfiles/empty.txt HTTP/1.1\r\nHost: x\r\n\r\n", true},
		// What Portage's wget sends.
		{"GET /distfiles/small.tar.gz HTTP/1.1\r\nUser-Agent: Wget/1.21.3\r\nAccept: */*\r\nAccept-Encoding: identity\r\nHost: 127.0.0.1\r\nConnection: Keep-Alive\r\n\r\n", true},
		// Handed on: ranges, conditions, other versions, escapes, other routes.
		{"GET /distfiles/small.tar.gz HTTP/1.1\r\nHost: x\r\nRange: bytes=100-199\r\n\r\n", false},
		{"GET /distfiles/small.tar.gz HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: Thu, 01 May 2025 08:00:00 GMT\r\n\r\n", false},
		{"GET /distfiles/small.tar.gz HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"x\"\r\n\r\n", false},
		{"GET /distfiles/small.tar.gz HTTP/1.0\r\n\r\n", false},
		{"GET /distfiles/small%2etar.gz HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"GET /distfiles/small.tar.gz?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"GET /distfiles/00/small.tar.gz HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"GET /distfiles/layout.conf HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"GET /distfiles/missing.tar.gz HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"GET /distfiles/../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"GET http://x/distfiles/small.tar.gz HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"POST /distfiles/small.tar.gz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", false},
		{"GET /distfiles/small.tar.gz HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", false},
		{"GET /distfiles/small.tar.gz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n", false},
		// Bad requests: net/http's 400.
		{"GET /distfiles/small.tar.gz HTTP/1.1\r\n\r\n", false},
		{"GET /distfiles/small.tar.gz HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", false},
		{"GET /distfiles/small.tar.gz HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n", false},
		{"GET /distfiles/small.tar.gz HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n", false},
		{"GET /distfiles/small.tar.gz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", false},
		{"GET /distfiles/small.tar.gz HTTP/1.1\r\nHost: a b\r\n\r\n", false},
		{"GET /distfiles/small.tar.gz HTTP/1.1\nHost: x\n\n", false},
		// A head longer than the front's buffer.
		{"GET /distfiles/small.tar.gz HTTP/1.1\r\nHost: x\r\nX-Long: " + strings.Repeat("a", 6000) + "\r\n\r\n", false},
	}
	for _, c := range cases {
		head := strings.HasPrefix(c.raw, "HEAD")
		before := e.srv.front.Load()
		fr, fb := exchange(t, e.front, c.raw, 1, head)
		answered := e.srv.front.Load() - before
		pr, pb := exchange(t, e.plain, c.raw, 1, head)
		sameAnswer(t, fmt.Sprintf("%.60q", c.raw), fr[0], pr[0], fb[0], pb[0])
		if want := map[bool]int64{true: 1, false: 0}[c.front]; answered != want {
			t.Fatalf("%.60q: the front answered %d, want %d", c.raw, answered, want)
		}
		if c.front {
			name := strings.TrimPrefix(strings.Fields(c.raw)[1], "/distfiles/")
			name = name[strings.LastIndex(name, "/")+1:]
			if !head && !bytes.Equal(fb[0], e.files[name]) {
				t.Fatalf("%.60q: wrong body", c.raw)
			}
			if fr[0].Header.Get("X-Cache") != "HIT" || fr[0].Header.Get("Etag") == "" {
				t.Fatalf("%.60q: headers %v", c.raw, fr[0].Header)
			}
		}
	}
	// One access-log line per request answered by the front, as
	// net/http's: client, method, URL, status, bytes, outcome.
	e.srv.alog.flush()
	if !strings.Contains(e.access.String(), ` GET "/distfiles/small.tar.gz" 200 40960 HIT `) ||
		!strings.Contains(e.access.String(), ` HEAD "/distfiles/small.tar.gz" 200 0 HIT `) {
		t.Fatalf("access log:\n%s", e.access.String())
	}
}

// TestFrontPipeline: requests sent at once on one connection are answered
// in order, by the front until one needs net/http, then by net/http from
// the bytes the front had read.
func TestFrontPipeline(t *testing.T) {
	e := newFrontEnv(t, Options{})
	get := "GET /distfiles/small.tar.gz HTTP/1.1\r\nHost: x\r\n\r\n"
	rng := "GET /distfiles/patch-1.2.patch HTTP/1.1\r\nHost: x\r\nRange: bytes=10-19\r\n\r\n"
	before := e.srv.front.Load()
	resps, bodies := exchange(t, e.front, get+get+rng+get+get, 5, false)
	for i, r := range resps {
		want := e.files["small.tar.gz"]
		code := 200
		if i == 2 {
			want, code = e.files["patch-1.2.patch"][10:20], 206
		}
		if r.StatusCode != code || !bytes.Equal(bodies[i], want) {
			t.Fatalf("answer %d: %d, %d bytes", i+1, r.StatusCode, len(bodies[i]))
		}
	}
	if n := e.srv.front.Load() - before; n != 2 {
		t.Fatalf("the front answered %d requests, want the 2 before the range", n)
	}
}

// TestFrontDeniedClient: a client outside the allow list gets net/http's
// 403, never a file from the front.
func TestFrontDeniedClient(t *testing.T) {
	e := newFrontEnv(t, Options{Allow: acl.MustParse("192.0.2.0/24")})
	resps, bodies := exchange(t, e.front, "GET /distfiles/small.tar.gz HTTP/1.1\r\nHost: x\r\n\r\n", 1, false)
	if resps[0].StatusCode != 403 || !bytes.Contains(bodies[0], []byte("allow list")) || e.srv.front.Load() != 0 {
		t.Fatalf("%d %q, front answers %d", resps[0].StatusCode, bodies[0], e.srv.front.Load())
	}
}

// closedWithin reports whether the server closes conn within d (reading
// and discarding what comes).
func closedWithin(conn net.Conn, d time.Duration) bool {
	conn.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, conn)
	return err == nil // EOF: closed; a timeout is an error
}

// TestFrontTimeouts: the front cuts a client trickling its head
// (slowloris) after ReadHeaderTimeout, a kept-alive connection after
// IdleTimeout, and closes after "Connection: close".
func TestFrontTimeouts(t *testing.T) {
	e := newFrontEnv(t, Options{ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: 400 * time.Millisecond})
	addr := e.front.Listener.Addr().String()

	// Slowloris: one byte every 50 ms, for ever.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	head := "GET /distfiles/small.tar.gz HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 1000)
	began := time.Now()
	cut := false
	for i := 0; i < len(head) && time.Since(began) < 10*time.Second; i++ {
		if _, err := conn.Write([]byte{head[i]}); err != nil {
			cut = true
			break
		}
		if closedWithin(conn, 50*time.Millisecond) {
			cut = true
			break
		}
	}
	if !cut {
		t.Fatalf("a trickled head was not cut after %v", time.Since(began))
	}

	// Idle after an answer.
	conn2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	io.WriteString(conn2, "GET /distfiles/patch-1.2.patch HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(conn2)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	conn2.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: %v, want EOF after the idle timeout", err)
	}

	// Connection: close.
	conn3, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn3.Close()
	io.WriteString(conn3, "GET /distfiles/patch-1.2.patch HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	conn3.SetReadDeadline(time.Now().Add(10 * time.Second))
	all, err := io.ReadAll(conn3)
	if err != nil || !bytes.Contains(all, []byte("\r\nConnection: close\r\n")) || !bytes.HasSuffix(all, e.files["patch-1.2.patch"]) {
		t.Fatalf("Connection: close: %v, %d bytes", err, len(all))
	}
}

// TestFrontShutdown: Shutdown ends the front's idle kept-alive
// connections at once.
func TestFrontShutdown(t *testing.T) {
	e := newFrontEnv(t, Options{})
	conn, err := net.Dial("tcp", e.front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /distfiles/patch-1.2.patch HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.front.Config.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection after Shutdown: %v, want EOF", err)
	}
}

// FuzzParsePlain: whatever the front takes as plain, net/http reads as the
// same GET or HEAD of the same target, with one Host and nothing that
// changes the answer.
func FuzzParsePlain(f *testing.F) {
	// The input is a head without its final empty line (the front only
	// parses heads it has read up to one).
	f.Add([]byte("GET /distfiles/a.tar.gz HTTP/1.1\r\nHost: x"))
	f.Add([]byte("HEAD /distfiles/" + hashDir("a") + "/a HTTP/1.1\r\nHost: [::1]:80\r\nConnection: close"))
	f.Add([]byte("GET /distfiles/a HTTP/1.1\r\nHost: x\r\nUser-Agent: Wget\r\nContent-Length: 0"))
	f.Add([]byte("GET /distfiles/a HTTP/1.1\r\nHost: x\r\nRange: bytes=1-"))
	f.Fuzz(func(t *testing.T, h []byte) {
		h = append(h[:len(h):len(h)], crlf2...)
		req, ok := parsePlain(h)
		if !ok {
			return
		}
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(h)))
		if err != nil {
			t.Fatalf("plain for the front, refused by net/http: %v\n%q", err, h)
		}
		want := http.MethodGet
		if req.head {
			want = http.MethodHead
		}
		if r.Method != want || r.RequestURI != req.target || r.ProtoMajor != 1 || r.ProtoMinor != 1 {
			t.Fatalf("front %+v, net/http %s %q %s", req, r.Method, r.RequestURI, r.Proto)
		}
		segs, err := splitPath(r.URL.EscapedPath())
		if err != nil || len(segs) < 2 || segs[0] != "distfiles" || segs[len(segs)-1] != req.name {
			t.Fatalf("front names %q, net/http's path %q (%v)", req.name, r.URL.EscapedPath(), err)
		}
		for _, k := range []string{"Range", "If-Range", "If-None-Match", "If-Modified-Since", "Transfer-Encoding", "Expect"} {
			if _, has := r.Header[k]; has {
				t.Fatalf("plain with %s: %q", k, h)
			}
		}
		if r.ContentLength > 0 || r.Close != req.close || r.Host == "" {
			t.Fatalf("front %+v, net/http length %d close %v host %q", req, r.ContentLength, r.Close, r.Host)
		}
	})
}
