package main

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/config"
	"github.com/lanmirror/lanmirror/internal/distcache"
	"github.com/lanmirror/lanmirror/internal/gentoo"
	"github.com/lanmirror/lanmirror/internal/testutil"
	"golang.org/x/crypto/blake2b"
)

// htUpstream is a test mirror: files by path, GET counts per path,
// optional throttling and a switch that breaks bodies half way.
type htUpstream struct {
	ts     *httptest.Server
	mu     sync.Mutex
	files  map[string][]byte
	gets   map[string]int
	slow   atomic.Bool // throttle bodies
	broken atomic.Bool // cut every body half way (Content-Length announced in full)
}

func newHTUpstream(t *testing.T) *htUpstream {
	u := &htUpstream{files: map[string][]byte{}, gets: map[string]int{}}
	u.ts = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.ts.Close)
	return u
}

// newHTUpstreamTLS is an https upstream with httptest's certificate for
// 127.0.0.1.
func newHTUpstreamTLS(t *testing.T) *htUpstream {
	u := &htUpstream{files: map[string][]byte{}, gets: map[string]int{}}
	u.ts = httptest.NewUnstartedServer(http.HandlerFunc(u.serve))
	u.ts.Config.ErrorLog = log.New(io.Discard, "", 0) // expected handshake failures
	u.ts.StartTLS()
	t.Cleanup(u.ts.Close)
	return u
}

func (u *htUpstream) put(path string, data []byte) {
	u.mu.Lock()
	u.files[path] = data
	u.mu.Unlock()
}

func (u *htUpstream) count(path string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.gets[path]
}

func (u *htUpstream) serve(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	data, ok := u.files[r.URL.Path]
	if r.Method == http.MethodGet {
		u.gets[r.URL.Path]++
	}
	u.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	mod := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	if u.broken.Load() {
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.Header().Set("Last-Modified", mod.Format(http.TimeFormat))
		w.WriteHeader(http.StatusOK)
		w.Write(data[:len(data)/2])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	var ww http.ResponseWriter = w
	if u.slow.Load() {
		ww = &htSlowWriter{w}
	}
	http.ServeContent(ww, r, "", mod, bytes.NewReader(data))
}

// htSlowWriter sends 16 KiB every 5 ms.
type htSlowWriter struct{ http.ResponseWriter }

func (s *htSlowWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), 16<<10)
		m, err := s.ResponseWriter.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		s.ResponseWriter.(http.Flusher).Flush()
		time.Sleep(5 * time.Millisecond)
		p = p[k:]
	}
	return n, nil
}

// htLog is a goroutine-safe buffer.
type htLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *htLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *htLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// htFreeAddr picks a free loopback port.
func htFreeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type htServer struct {
	url    string
	data   string
	access *htLog
}

// startHTTPComponent runs the http component in process on a free
// loopback port until the test ends.
func startHTTPComponent(t *testing.T, cfg *config.Serve) *htServer {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	cfg.HTTPAddr = htFreeAddr(t)
	access := &htLog{}
	srv := newServer(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), access)
	ctx, cancel := context.WithCancel(context.Background())
	run, err := srv.openHTTP(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("http component: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("http component did not stop")
		}
	})
	return &htServer{url: "http://" + cfg.HTTPAddr, data: cfg.DataDir, access: access}
}

type htResult struct {
	out  string
	code int
}

// htRun runs a stock client with a deadline in a clean environment (PATH,
// a private HOME, WGETRC=/dev/null and env).
func htRun(t *testing.T, dir string, env []string, name string, args ...string) htResult {
	t.Helper()
	testutil.RequireTool(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "WGETRC=/dev/null"}, env...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %v timed out:\n%s", name, args, buf.String())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%s: %v", name, err)
	}
	code := 0
	if ee != nil {
		code = ee.ExitCode()
	}
	return htResult{buf.String(), code}
}

func htData(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed)*7919 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

func htHashDir(name string) string {
	s := blake2b.Sum512([]byte(name))
	return fmt.Sprintf("%02x", s[0])
}

func htReadFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The classic setup: http_proxy plus http-replicator's RESUMECOMMAND and
// Portage's FETCHCOMMAND, against the real cache; the second client is
// served from the cache without asking upstream.
func TestHTTPProxyClassicClients(t *testing.T) {
	up := newHTUpstream(t)
	data := htData(700_000, 1)
	up.put("/distfiles/foo-1.2.tar.xz", data)
	up.put("/robots.txt", []byte("User-agent: *\n"))
	srv := startHTTPComponent(t, &config.Serve{Mirrors: []string{up.ts.URL}})
	dir := t.TempDir()
	env := []string{"http_proxy=" + srv.url}

	r := htRun(t, dir, env, "wget", "--no-config", "-t", "5", "--passive-ftp", up.ts.URL+"/distfiles/foo-1.2.tar.xz", "-O", "a")
	if r.code != 0 || !bytes.Equal(htReadFile(t, filepath.Join(dir, "a")), data) {
		t.Fatalf("classic wget: %d\n%s", r.code, r.out)
	}
	r = htRun(t, dir, env, "wget", "--no-config", "-t", "3", "-T", "60", "--passive-ftp", "-O", "b", "http://distfiles.example.org/distfiles/"+htHashDir("foo-1.2.tar.xz")+"/foo-1.2.tar.xz")
	if r.code != 0 || !bytes.Equal(htReadFile(t, filepath.Join(dir, "b")), data) {
		t.Fatalf("portage wget: %d\n%s", r.code, r.out)
	}
	// Resume of a partial file (Portage's RESUMECOMMAND).
	os.WriteFile(filepath.Join(dir, "c"), data[:400_000], 0o644)
	r = htRun(t, dir, env, "wget", "--no-config", "-c", "-t", "3", "-T", "60", "--passive-ftp", "-O", "c", up.ts.URL+"/distfiles/foo-1.2.tar.xz")
	if r.code != 0 || !bytes.Equal(htReadFile(t, filepath.Join(dir, "c")), data) {
		t.Fatalf("wget -c: %d\n%s", r.code, r.out)
	}
	if n := up.count("/distfiles/foo-1.2.tar.xz"); n != 1 {
		t.Fatalf("upstream GETs of the distfile = %d, want 1", n)
	}
	if got := htReadFile(t, filepath.Join(srv.data, distcache.DistfilesPrefix, "foo-1.2.tar.xz")); !bytes.Equal(got, data) {
		t.Fatal("cached file differs")
	}
	// A non-distfile URL through the proxy (the upstream host is a mirror,
	// so it is allowed).
	r = htRun(t, dir, env, "curl", "-sSf", "-o", "robots", up.ts.URL+"/robots.txt")
	if r.code != 0 || string(htReadFile(t, filepath.Join(dir, "robots"))) != "User-agent: *\n" {
		t.Fatalf("proxied URL: %d\n%s", r.code, r.out)
	}
	log := srv.access.String()
	for _, want := range []string{" MISS ", " HIT "} {
		if !strings.Contains(log, want) {
			t.Fatalf("access log lacks %q:\n%s", want, log)
		}
	}
}

// Mirror mode (GENTOO_MIRRORS): layout.conf, hashed and flat paths with
// curl and wget, a real 404 for a name no mirror has.
func TestHTTPMirrorMode(t *testing.T) {
	up := newHTUpstream(t)
	data := htData(90_000, 2)
	up.put("/distfiles/bar-3.zip", data)
	srv := startHTTPComponent(t, &config.Serve{Mirrors: []string{up.ts.URL}})
	dir := t.TempDir()
	r := htRun(t, dir, nil, "curl", "-sSf", "-o", "layout.conf", srv.url+"/distfiles/layout.conf")
	if r.code != 0 || !bytes.Equal(htReadFile(t, filepath.Join(dir, "layout.conf")), gentoo.ServedLayoutConf()) {
		t.Fatalf("layout.conf: %d %s", r.code, r.out)
	}
	r = htRun(t, dir, nil, "curl", "-sSf", "-o", "h", srv.url+"/distfiles/"+htHashDir("bar-3.zip")+"/bar-3.zip")
	if r.code != 0 || !bytes.Equal(htReadFile(t, filepath.Join(dir, "h")), data) {
		t.Fatalf("hashed: %d %s", r.code, r.out)
	}
	r = htRun(t, dir, nil, "wget", "--no-config", "-O", "f", srv.url+"/distfiles/bar-3.zip")
	if r.code != 0 || !bytes.Equal(htReadFile(t, filepath.Join(dir, "f")), data) {
		t.Fatalf("flat: %d %s", r.code, r.out)
	}
	r = htRun(t, dir, nil, "curl", "-sS", "-o", "nf", "-w", "%{http_code}", srv.url+"/distfiles/nowhere-1.0.tar.gz")
	if strings.TrimSpace(r.out) != "404" || !strings.Contains(string(htReadFile(t, filepath.Join(dir, "nf"))), "not found") {
		t.Fatalf("missing name: %q %q", r.out, htReadFile(t, filepath.Join(dir, "nf")))
	}
	r = htRun(t, dir, nil, "wget", "--no-config", "-O", "nf2", srv.url+"/distfiles/nowhere-1.0.tar.gz")
	if r.code != 8 {
		t.Fatalf("wget of a missing name: exit %d, want 8 (server error response)\n%s", r.code, r.out)
	}
}

// Twenty clients of one uncached, slow file: one upstream request, the
// same bytes for everyone.
func TestHTTPParallelClientsOneDownload(t *testing.T) {
	up := newHTUpstream(t)
	data := htData(1_500_000, 3)
	up.put("/distfiles/big-1.0.tar.gz", data)
	up.slow.Store(true)
	srv := startHTTPComponent(t, &config.Serve{Mirrors: []string{up.ts.URL}})
	dir := t.TempDir()
	const n = 20
	var wg sync.WaitGroup
	results := make([]htResult, n)
	for i := range n {
		wg.Go(func() {
			path := "/distfiles/big-1.0.tar.gz"
			if i%2 == 1 {
				path = "/distfiles/" + htHashDir("big-1.0.tar.gz") + "/big-1.0.tar.gz"
			}
			results[i] = htRun(t, dir, nil, "wget", "--no-config", "-t", "1", "-O", fmt.Sprintf("out%d", i), srv.url+path)
		})
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 {
			t.Fatalf("client %d: exit %d\n%s", i, r.code, r.out)
		}
		if !bytes.Equal(htReadFile(t, filepath.Join(dir, fmt.Sprintf("out%d", i))), data) {
			t.Fatalf("client %d: bytes differ", i)
		}
	}
	if c := up.count("/distfiles/big-1.0.tar.gz"); c != 1 {
		t.Fatalf("upstream GETs = %d, want 1", c)
	}
	if !strings.Contains(srv.access.String(), " JOIN ") {
		t.Fatalf("no client joined the running download:\n%s", srv.access.String())
	}
}

// An upstream that breaks every transfer: the clients see a failure,
// nothing is cached; once upstream is healthy a retry succeeds.
func TestHTTPUpstreamFailureMidBody(t *testing.T) {
	up := newHTUpstream(t)
	data := htData(600_000, 4)
	up.put("/distfiles/flaky-2.tar.gz", data)
	up.broken.Store(true)
	srv := startHTTPComponent(t, &config.Serve{Mirrors: []string{up.ts.URL}})
	dir := t.TempDir()
	u := srv.url + "/distfiles/flaky-2.tar.gz"
	r := htRun(t, dir, nil, "curl", "-sS", "-o", "c", u)
	if r.code == 0 {
		t.Fatalf("curl succeeded on a broken upstream")
	}
	r = htRun(t, dir, nil, "wget", "--no-config", "-t", "1", "-O", "w", u)
	if r.code == 0 {
		t.Fatalf("wget succeeded on a broken upstream:\n%s", r.out)
	}
	if _, err := os.Stat(filepath.Join(srv.data, "distfiles", "flaky-2.tar.gz")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a broken download was cached: %v", err)
	}
	up.broken.Store(false)
	r = htRun(t, dir, nil, "wget", "--no-config", "-c", "-t", "1", "-O", "w", u)
	if r.code != 0 || !bytes.Equal(htReadFile(t, filepath.Join(dir, "w")), data) {
		t.Fatalf("retry: %d\n%s", r.code, r.out)
	}
	if got := htReadFile(t, filepath.Join(srv.data, "distfiles", "flaky-2.tar.gz")); !bytes.Equal(got, data) {
		t.Fatal("cached file differs")
	}
}

// No open proxy, with the real upstream client: the allowed upstream is
// reachable, another loopback port (a live server) and private or
// link-local destinations are refused and never contacted.
func TestHTTPNoOpenProxy(t *testing.T) {
	up := newHTUpstream(t)
	up.put("/ok.txt", []byte("ok"))
	victim := newHTUpstream(t)
	victim.put("/secret", []byte("secret"))
	srv := startHTTPComponent(t, &config.Serve{
		Mirrors:         []string{"http://127.0.0.1:1/"}, // nothing listens there
		ProxyAllowHosts: []string{strings.TrimPrefix(up.ts.URL, "http://")},
	})
	dir := t.TempDir()
	code := func(target string, extra ...string) (string, string) {
		out := filepath.Join(dir, "body")
		os.Remove(out)
		args := append([]string{"-sS", "-o", out, "-w", "%{http_code}", "-x", srv.url}, extra...)
		r := htRun(t, dir, nil, "curl", append(args, target)...)
		b, _ := os.ReadFile(out)
		return strings.TrimSpace(r.out), string(b)
	}
	if c, b := code(up.ts.URL + "/ok.txt"); c != "200" || b != "ok" {
		t.Fatalf("allowed host: %s %q", c, b)
	}
	_, vport, _ := net.SplitHostPort(strings.TrimPrefix(victim.ts.URL, "http://"))
	for _, target := range []string{
		victim.ts.URL + "/secret",
		"http://localhost:" + vport + "/secret",
		"http://[::1]:" + vport + "/secret",
		"http://10.0.0.1/secret",
		"http://169.254.169.254/latest/meta-data/",
	} {
		if c, b := code(target); c != "403" || strings.Contains(b, "secret\n") || b == "secret" {
			t.Fatalf("%s: %s %q", target, c, b)
		}
	}
	if n := victim.count("/secret"); n != 0 {
		t.Fatalf("the refused destination was contacted %d times", n)
	}
	// CONNECT is refused.
	r := htRun(t, dir, nil, "curl", "-sS", "-v", "-p", "-x", srv.url, "https://"+strings.TrimPrefix(up.ts.URL, "http://")+"/")
	if r.code == 0 || !strings.Contains(r.out, "405") {
		t.Fatalf("CONNECT: %d %s", r.code, r.out)
	}
}

// A client outside --allow gets 403 on every endpoint.
func TestHTTPAllowList(t *testing.T) {
	srv := startHTTPComponent(t, &config.Serve{Allow: []string{"127.0.0.1/32"}, Mirrors: []string{"http://127.0.0.1:1/"}})
	dir := t.TempDir()
	for _, p := range []string{"/", "/metrics", "/distfiles/layout.conf", "/distfiles/x.tar.gz"} {
		r := htRun(t, dir, nil, "curl", "-sS", "--interface", "127.0.0.2", "-o", "/dev/null", "-w", "%{http_code}", srv.url+p)
		if strings.TrimSpace(r.out) != "403" {
			t.Fatalf("%s from 127.0.0.2: %q", p, r.out)
		}
	}
	r := htRun(t, dir, nil, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", srv.url+"/distfiles/layout.conf")
	if strings.TrimSpace(r.out) != "200" {
		t.Fatalf("from 127.0.0.1: %q", r.out)
	}
	if !strings.Contains(srv.access.String(), "127.0.0.2:") {
		t.Fatalf("no log line for the refused client:\n%s", srv.access.String())
	}
}

// htExecMain makes the test binary act as lanmirror when started by
// htStartBinary, so the tests run the real command (main, cobra, serve,
// signals) in a process of its own without a separate build.
const htExecMain = "LANMIRROR_HTTPD_TEST_EXEC_MAIN"

func init() {
	if os.Getenv(htExecMain) == "1" {
		main()
		os.Exit(0)
	}
}

// htBinary returns the program to run as lanmirror: this test binary
// (see htExecMain).
func htBinary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// htStartBinary starts `lanmirror serve` and waits until addr accepts
// connections. The process is killed at the end of the test if still
// running.
func htStartBinary(t *testing.T, bin, addr string, args ...string) *htProc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--allow-root", "--http", addr, "--rsync", ""}, args...)...)
	cmd.Env = append(os.Environ(), htExecMain+"=1")
	var out htLog
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return &htProc{cmd: cmd, exited: exited}
		}
		select {
		case <-exited:
			t.Fatalf("lanmirror exited at start:\n%s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("lanmirror does not listen on %s:\n%s", addr, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// htProc is a running lanmirror; exited closes when it has been waited for.
type htProc struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// kill -9 of the server in the middle of a download: the client sees a
// failure, nothing partial is kept, and after a restart the file is
// fetched correctly.
func TestHTTPRestartAfterKill(t *testing.T) {
	bin := htBinary(t)
	up := newHTUpstream(t)
	data := htData(4_000_000, 5)
	up.put("/distfiles/killed-1.tar.gz", data)
	up.slow.Store(true) // about 1.2 s for the whole file
	dataDir := t.TempDir()
	addr := htFreeAddr(t)
	args := []string{"--data", dataDir, "--mirror", up.ts.URL, "--log", filepath.Join(dataDir, "access.log")}
	srv := htStartBinary(t, bin, addr, args...)

	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := exec.CommandContext(ctx, "curl", "-sS", "-o", filepath.Join(dir, "partial"), "http://"+addr+"/distfiles/killed-1.tar.gz")
	client.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if fi, err := os.Stat(filepath.Join(dir, "partial")); err == nil && fi.Size() > 200_000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("download did not start")
		}
	}
	if err := srv.cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	<-srv.exited // its listener is gone before the restart binds the address
	if err := client.Wait(); err == nil {
		t.Fatal("curl succeeded although the server was killed mid-download")
	}
	if fi, err := os.Stat(filepath.Join(dir, "partial")); err == nil && fi.Size() >= int64(len(data)) {
		t.Fatal("the client got the whole file from a killed server")
	}
	if _, err := os.Stat(filepath.Join(dataDir, "distfiles", "killed-1.tar.gz")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a partial download entered the cache: %v", err)
	}

	up.slow.Store(false)
	srv2 := htStartBinary(t, bin, addr, args...)
	r := htRun(t, dir, nil, "wget", "--no-config", "-t", "3", "-T", "60", "-O", "again", "http://"+addr+"/distfiles/killed-1.tar.gz")
	if r.code != 0 || !bytes.Equal(htReadFile(t, filepath.Join(dir, "again")), data) {
		t.Fatalf("after restart: %d\n%s", r.code, r.out)
	}
	if got := htReadFile(t, filepath.Join(dataDir, "distfiles", "killed-1.tar.gz")); !bytes.Equal(got, data) {
		t.Fatal("cached file differs")
	}
	// Leftovers of the killed download are gone (the running server keeps
	// an empty directory of its own below .partial).
	var leftovers []string
	filepath.WalkDir(filepath.Join(dataDir, ".partial"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			leftovers = append(leftovers, p)
		}
		return nil
	})
	if len(leftovers) != 0 {
		t.Fatalf("leftovers in .partial: %v", leftovers)
	}
	// A clean stop on SIGTERM.
	if err := srv2.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-srv2.exited:
		if !srv2.cmd.ProcessState.Success() {
			t.Fatalf("lanmirror exit after SIGINT: %v", srv2.cmd.ProcessState)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("lanmirror did not stop on SIGINT")
	}
	if log := htReadFile(t, filepath.Join(dataDir, "access.log")); !bytes.Contains(log, []byte("/distfiles/killed-1.tar.gz")) {
		t.Fatalf("access log:\n%s", log)
	}
}

// Ranges on a file being downloaded are answered once the bytes exist;
// HEAD, 304 and 416 on the cached file.
func TestHTTPRangeWhileDownloadingAndHeaders(t *testing.T) {
	up := newHTUpstream(t)
	data := htData(3_000_000, 6)
	up.put("/distfiles/range-1.tar.gz", data)
	up.slow.Store(true)
	srv := startHTTPComponent(t, &config.Serve{Mirrors: []string{up.ts.URL}})
	dir := t.TempDir()
	u := srv.url + "/distfiles/range-1.tar.gz"

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	first := exec.CommandContext(ctx, "curl", "-sS", "-o", filepath.Join(dir, "full"), u)
	first.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if fi, err := os.Stat(filepath.Join(dir, "full")); err == nil && fi.Size() > 50_000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("download did not start")
		}
	}
	// Bytes far ahead of the download, and a resume from the middle.
	r := htRun(t, dir, nil, "curl", "-sSf", "-r", "2500000-2500999", "-D", "h", "-o", "part", u)
	if r.code != 0 || !bytes.Equal(htReadFile(t, filepath.Join(dir, "part")), data[2500000:2501000]) {
		t.Fatalf("range during download: %d %s", r.code, r.out)
	}
	if h := string(htReadFile(t, filepath.Join(dir, "h"))); !strings.Contains(h, "206") || !strings.Contains(h, "Content-Range: bytes 2500000-2500999/3000000") {
		t.Fatalf("range headers:\n%s", h)
	}
	os.WriteFile(filepath.Join(dir, "resumed"), data[:1_000_000], 0o644)
	r = htRun(t, dir, nil, "curl", "-sSf", "-C", "-", "-o", "resumed", u)
	if r.code != 0 || !bytes.Equal(htReadFile(t, filepath.Join(dir, "resumed")), data) {
		t.Fatalf("curl -C - during download: %d %s", r.code, r.out)
	}
	if err := first.Wait(); err != nil {
		t.Fatalf("first client: %v", err)
	}
	if !bytes.Equal(htReadFile(t, filepath.Join(dir, "full")), data) {
		t.Fatal("first client: bytes differ")
	}
	if c := up.count("/distfiles/range-1.tar.gz"); c != 1 {
		t.Fatalf("upstream GETs = %d, want 1", c)
	}

	r = htRun(t, dir, nil, "curl", "-sSI", u)
	for _, want := range []string{"200", "Content-Length: 3000000", "Accept-Ranges: bytes", "Last-Modified: Tue, 02 Jan 2024 03:04:05 GMT"} {
		if !strings.Contains(r.out, want) {
			t.Fatalf("HEAD lacks %q:\n%s", want, r.out)
		}
	}
	r = htRun(t, dir, nil, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "If-Modified-Since: Tue, 02 Jan 2024 03:04:05 GMT", u)
	if strings.TrimSpace(r.out) != "304" {
		t.Fatalf("If-Modified-Since: %q", r.out)
	}
	r = htRun(t, dir, nil, "curl", "-sS", "-o", "/dev/null", "-D", "-", "-r", "3000000-", u)
	if !strings.Contains(r.out, " 416") || !strings.Contains(r.out, "Content-Range: bytes */3000000") {
		t.Fatalf("416:\n%s", r.out)
	}
}

// --binhost-upstream: Packages and package files are fetched once and
// cached; local --binpkgs files win, missing ones fall back upstream, and
// the local Packages index lists the upstream packages too.
func TestHTTPBinhostUpstream(t *testing.T) {
	up := newHTUpstream(t)
	pkg := htData(50_000, 7)
	up.put("/bin/amd64/Packages", []byte("ARCH: amd64\nPACKAGES: 1\nTIMESTAMP: 1700000000\nVERSION: 0\n\nBUILD_ID: 1\nCPV: app-misc/foo-1\nPATH: app-misc/foo/foo-1-1.gpkg.tar\nSIZE: 50000\n\n"))
	up.put("/bin/amd64/app-misc/foo/foo-1-1.gpkg.tar", pkg)
	local := t.TempDir()
	os.MkdirAll(filepath.Join(local, "All"), 0o755)
	os.WriteFile(filepath.Join(local, "All", "mine-1.tbz2"), []byte("local package"), 0o644)
	srv := startHTTPComponent(t, &config.Serve{
		Mirrors: []string{"http://127.0.0.1:1/"}, Binpkgs: local, BinhostUpstream: up.ts.URL + "/bin/amd64",
	})
	dir := t.TempDir()
	for range 2 {
		r := htRun(t, dir, nil, "wget", "--no-config", "-O", "pkg", srv.url+"/binpkgs/app-misc/foo/foo-1-1.gpkg.tar")
		if r.code != 0 || !bytes.Equal(htReadFile(t, filepath.Join(dir, "pkg")), pkg) {
			t.Fatalf("upstream package: %d %s", r.code, r.out)
		}
	}
	if c := up.count("/bin/amd64/app-misc/foo/foo-1-1.gpkg.tar"); c != 1 {
		t.Fatalf("upstream GETs of the package = %d, want 1", c)
	}
	if _, err := os.Stat(filepath.Join(srv.data, "binhost", "app-misc", "foo", "foo-1-1.gpkg.tar")); err != nil {
		t.Fatalf("package not cached: %v", err)
	}
	r := htRun(t, dir, nil, "curl", "-sSf", srv.url+"/binpkgs/All/mine-1.tbz2")
	if r.code != 0 || r.out != "local package" {
		t.Fatalf("local package: %d %q", r.code, r.out)
	}
	r = htRun(t, dir, nil, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", srv.url+"/binpkgs/app-misc/none/none-1.gpkg.tar")
	if strings.TrimSpace(r.out) != "404" {
		t.Fatalf("missing package: %q", r.out)
	}
	// The local index lists the upstream packages (read through the cache).
	for range 2 {
		r = htRun(t, dir, nil, "curl", "-sSf", srv.url+"/binpkgs/Packages")
		if r.code != 0 || !strings.Contains(r.out, "CPV: app-misc/foo-1\n") || !strings.Contains(r.out, "PATH: app-misc/foo/foo-1-1.gpkg.tar\n") {
			t.Fatalf("merged Packages: %d\n%s", r.code, r.out)
		}
	}
	if c := up.count("/bin/amd64/Packages"); c != 1 {
		t.Fatalf("upstream GETs of Packages = %d, want 1 (cached, volatile)", c)
	}
}

// Only the upstream binhost: its Packages index is served (and cached as
// volatile).
func TestHTTPBinhostUpstreamPackages(t *testing.T) {
	up := newHTUpstream(t)
	idx := []byte("ARCH: amd64\nPACKAGES: 0\n")
	up.put("/bh/Packages", idx)
	srv := startHTTPComponent(t, &config.Serve{Mirrors: []string{"http://127.0.0.1:1/"}, BinhostUpstream: up.ts.URL + "/bh/"})
	dir := t.TempDir()
	for range 2 {
		r := htRun(t, dir, nil, "curl", "-sSf", srv.url+"/binpkgs/Packages")
		if r.code != 0 || r.out != string(idx) {
			t.Fatalf("Packages: %d %q", r.code, r.out)
		}
	}
	if c := up.count("/bh/Packages"); c != 1 {
		t.Fatalf("upstream GETs of Packages within the freshness time = %d, want 1", c)
	}
	r := htRun(t, dir, nil, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "If-Modified-Since: Tue, 02 Jan 2024 03:04:05 GMT", srv.url+"/binpkgs/Packages")
	if strings.TrimSpace(r.out) != "304" {
		t.Fatalf("Packages If-Modified-Since: %q", r.out)
	}
}

// htTree writes an ebuild repository whose Manifest has DIST entries for
// the given files.
func htTree(t *testing.T, files map[string][]byte) string {
	t.Helper()
	tree := t.TempDir()
	pkg := filepath.Join(tree, "app-misc", "foo")
	if err := os.MkdirAll(pkg, 0o755); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(tree, "metadata"), 0o755)
	os.WriteFile(filepath.Join(tree, "metadata", "timestamp.chk"), []byte("Tue, 24 Nov 2026 12:00:00 +0000\n"), 0o644)
	var m strings.Builder
	for name, data := range files {
		b2 := blake2b.Sum512(data)
		s5 := sha512.Sum512(data)
		fmt.Fprintf(&m, "DIST %s %d BLAKE2B %x SHA512 %x\n", name, len(data), b2, s5)
	}
	os.WriteFile(filepath.Join(pkg, "foo-1.ebuild"), []byte("EAPI=8\n"), 0o644)
	if err := os.WriteFile(filepath.Join(pkg, "Manifest"), []byte(m.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return tree
}

// Fetch-through with Portage's FETCHCOMMAND as client-config prints it:
// a distfile on no mirror is fetched from its https origin (certificate
// checked against SSL_CERT_FILE), verified against the Manifest, cached;
// a corrupt origin copy is refused and not cached; a name with no DIST
// entry is refused with 403; an untrusted certificate fails the fetch.
func TestHTTPFetchThroughHTTPSOrigin(t *testing.T) {
	good := htData(120_000, 8)
	want := htData(50_000, 9)
	bad := append([]byte(nil), want...)
	bad[1000] ^= 0xff
	tree := htTree(t, map[string][]byte{"good-1.tar.gz": good, "corrupt-1.tar.gz": want})
	mirror := newHTUpstream(t) // has none of the files
	origin := newHTUpstreamTLS(t)
	origin.put("/files/good-1.tar.gz", good)
	origin.put("/files/corrupt-1.tar.gz", bad)
	origin.put("/files/unknown-1.tar.gz", good)
	certPEM := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: origin.ts.Certificate().Raw}), 0o644)
	originHost := strings.TrimPrefix(origin.ts.URL, "https://")

	bin := htBinary(t)
	dataDir := t.TempDir()
	addr := htFreeAddr(t)
	args := []string{"--data", dataDir, "--mirror", mirror.ts.URL, "--tree", tree, "--proxy-allow-host", originHost}
	t.Setenv("SSL_CERT_FILE", certPEM) // inherited by the server process
	htStartBinary(t, bin, addr, args...)

	dir := t.TempDir()
	fetch := func(name, uri string) htResult {
		file := name + ".__download__"
		return htRun(t, dir, nil, "wget", "--no-config", "-t", "3", "-T", "60", "--passive-ftp", "-O", filepath.Join(dir, file),
			"http://"+addr+"/fetch/"+file+"?uri="+uri)
	}
	// The DIST index is built in the background right after the start;
	// fetch-through waits for it.
	r := fetch("good-1.tar.gz", origin.ts.URL+"/files/good-1.tar.gz?mirror=no&x=1")
	if r.code != 0 || !bytes.Equal(htReadFile(t, filepath.Join(dir, "good-1.tar.gz.__download__")), good) {
		t.Fatalf("fetch-through from the https origin: %d\n%s", r.code, r.out)
	}
	if got := htReadFile(t, filepath.Join(dataDir, "distfiles", "good-1.tar.gz")); !bytes.Equal(got, good) {
		t.Fatal("fetched file not cached")
	}
	if r := fetch("corrupt-1.tar.gz", origin.ts.URL+"/files/corrupt-1.tar.gz"); r.code == 0 {
		t.Fatalf("corrupt origin copy served:\n%s", r.out)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "distfiles", "corrupt-1.tar.gz")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("corrupt copy cached: %v", err)
	}
	r = htRun(t, dir, nil, "curl", "-sS", "-w", "\n%{http_code}", "http://"+addr+"/fetch/unknown-1.tar.gz?uri="+origin.ts.URL+"/files/unknown-1.tar.gz")
	if !strings.HasSuffix(r.out, "403") || !strings.Contains(r.out, "no DIST entry") {
		t.Fatalf("unknown name: %q", r.out)
	}
	if n := origin.count("/files/unknown-1.tar.gz"); n != 0 {
		t.Fatalf("origin of an unknown name contacted %d times", n)
	}

	// Without the test CA the origin's certificate is not trusted.
	t.Setenv("SSL_CERT_FILE", filepath.Join(t.TempDir(), "none.pem"))
	addr2 := htFreeAddr(t)
	htStartBinary(t, bin, addr2, "--data", t.TempDir(), "--mirror", mirror.ts.URL, "--tree", tree, "--proxy-allow-host", originHost)
	r = htRun(t, dir, nil, "curl", "-sS", "-w", "\n%{http_code}", "http://"+addr2+"/fetch/good-1.tar.gz?uri="+origin.ts.URL+"/files/good-1.tar.gz")
	if !strings.HasSuffix(r.out, "502") || !strings.Contains(r.out, "certificate") {
		t.Fatalf("untrusted certificate: %q", r.out)
	}
}

// --alias serves a directory read-only; traversal attempts (plain,
// encoded, through symlinks) are refused on the alias and the mirror
// paths alike.
func TestHTTPAliasAndTraversal(t *testing.T) {
	pkgs := t.TempDir()
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("SECRET"), 0o644)
	os.WriteFile(filepath.Join(pkgs, "foo-1.tbz2"), []byte("binary package"), 0o644)
	os.Symlink(filepath.Join(outside, "secret"), filepath.Join(pkgs, "link"))
	al, err := config.ParseAlias(pkgs + ":All")
	if err != nil {
		t.Fatal(err)
	}
	srv := startHTTPComponent(t, &config.Serve{Mirrors: []string{"http://127.0.0.1:1/"}, Aliases: []config.Alias{al}})
	dir := t.TempDir()
	get := func(path string) (string, string) {
		out := filepath.Join(dir, "b")
		os.Remove(out)
		r := htRun(t, dir, nil, "curl", "-sS", "--path-as-is", "-o", out, "-w", "%{http_code}", srv.url+path)
		b, _ := os.ReadFile(out)
		return strings.TrimSpace(r.out), string(b)
	}
	if c, b := get("/All/foo-1.tbz2"); c != "200" || b != "binary package" {
		t.Fatalf("alias file: %s %q", c, b)
	}
	if c, b := get("/All/"); c != "200" || !strings.Contains(b, "foo-1.tbz2") {
		t.Fatalf("alias index: %s %q", c, b)
	}
	rel := "/All/../" + filepath.Base(outside) + "/secret"
	for _, p := range []string{rel, "/All/%2e%2e/" + filepath.Base(outside) + "/secret", "/All/..%2f..%2fetc%2fpasswd", "/All/link", "/distfiles/../../etc/passwd", "/distfiles/%2e%2e%2fsecret", "/All/a%5c..%5csecret"} {
		c, b := get(p)
		if (c != "400" && c != "404") || strings.Contains(b, "SECRET") || strings.Contains(b, "root:") {
			t.Fatalf("%s: %s %q", p, c, b)
		}
	}
	r := htRun(t, dir, nil, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "--data", "x", srv.url+"/All/new")
	if strings.TrimSpace(r.out) != "405" {
		t.Fatalf("PUT: %q", r.out)
	}
	if _, err := os.Stat(filepath.Join(pkgs, "new")); err == nil {
		t.Fatal("PUT wrote a file")
	}
}

// An upstream that sends no Content-Length: lanmirror streams chunked, the
// client gets every byte; when such a body breaks, the client sees a
// failure (no terminating chunk) and nothing is cached.
func TestHTTPUnknownLengthUpstream(t *testing.T) {
	data := htData(800_000, 10)
	var broken atomic.Bool
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/distfiles/nolen-1.tar.gz" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/x-gzip")
		w.WriteHeader(http.StatusOK)
		for off := 0; off < len(data); off += 64 << 10 {
			if broken.Load() && off >= len(data)/2 {
				panic(http.ErrAbortHandler)
			}
			w.Write(data[off:min(off+64<<10, len(data))])
			w.(http.Flusher).Flush()
			time.Sleep(2 * time.Millisecond)
		}
	}))
	t.Cleanup(up.Close)
	srv := startHTTPComponent(t, &config.Serve{Mirrors: []string{up.URL}})
	dir := t.TempDir()
	u := srv.url + "/distfiles/nolen-1.tar.gz"

	broken.Store(true)
	r := htRun(t, dir, nil, "curl", "-sS", "-o", "b", u)
	if r.code == 0 {
		t.Fatal("curl succeeded on a broken body of unknown length")
	}
	if _, err := os.Stat(filepath.Join(srv.data, "distfiles", "nolen-1.tar.gz")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("broken download cached: %v", err)
	}
	broken.Store(false)
	r = htRun(t, dir, nil, "curl", "-sSf", "-D", "h", "-o", "ok", u)
	if r.code != 0 || !bytes.Equal(htReadFile(t, filepath.Join(dir, "ok")), data) {
		t.Fatalf("unknown length: %d %s", r.code, r.out)
	}
	if h := strings.ToLower(string(htReadFile(t, filepath.Join(dir, "h")))); !strings.Contains(h, "transfer-encoding: chunked") {
		t.Fatalf("not chunked:\n%s", h)
	}
	// Cached now: a plain answer with its length.
	r = htRun(t, dir, nil, "curl", "-sSI", u)
	if !strings.Contains(r.out, "Content-Length: 800000") {
		t.Fatalf("HEAD after caching:\n%s", r.out)
	}
}
