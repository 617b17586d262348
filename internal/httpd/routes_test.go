package httpd

import (
	"bytes"
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
	"github.com/lanmirror/lanmirror/internal/config"
	"github.com/lanmirror/lanmirror/internal/distcache"
	"github.com/lanmirror/lanmirror/internal/gentoo"
	"github.com/lanmirror/lanmirror/internal/testutil"
)

// lockedBuffer is a goroutine-safe access-log sink.
type lockedBuffer = testutil.Buffer

type testEnv struct {
	t      *testing.T
	cache  *fakeCache
	srv    *Server
	ts     *httptest.Server
	url    string // http://127.0.0.1:PORT
	access *lockedBuffer
	dir    string
}

// startServer runs a Server with a fake cache on loopback. opt.Cache and
// opt.AccessLog are filled in.
func startServer(t *testing.T, opt Options) *testEnv {
	t.Helper()
	e := &testEnv{t: t, cache: newFakeCache(), access: &lockedBuffer{}, dir: t.TempDir()}
	opt.Cache = e.cache
	opt.AccessLog = e.access
	srv, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	e.ts = serveFront(t, srv)
	e.url = e.ts.URL
	t.Cleanup(func() {
		e.ts.Close()
		srv.Close()
	})
	return e
}

func (e *testEnv) curl(args ...string) runResult {
	e.t.Helper()
	return runClient(e.t, e.dir, nil, "curl", args...)
}

func (e *testEnv) file(name string) []byte {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.dir, name))
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// status fetches url with curl and returns the status code and body.
func (e *testEnv) status(extra ...string) (int, string) {
	e.t.Helper()
	out := filepath.Join(e.dir, "status.body")
	os.Remove(out)
	args := append([]string{"-sS", "-o", out, "-w", "%{http_code}"}, extra...)
	r := e.curl(args...)
	var code int
	fmt.Sscanf(strings.TrimSpace(r.out), "%d", &code)
	body, _ := os.ReadFile(out)
	return code, string(body)
}

func TestMirrorHashedAndFlatPaths(t *testing.T) {
	e := startServer(t, Options{})
	data := testData(150_000, 1)
	e.cache.put("foo-1.0.tar.gz", &fakeObject{data: data})
	e.cache.put("a b+c.tar.gz", &fakeObject{data: data[:1000]})

	hh := hashDir("foo-1.0.tar.gz")
	if r := e.curl("-sSf", "-o", "hashed", e.url+"/distfiles/"+hh+"/foo-1.0.tar.gz"); r.code != 0 {
		t.Fatalf("curl hashed path: %d %s", r.code, r.out)
	}
	if !bytes.Equal(e.file("hashed"), data) {
		t.Fatal("hashed path: bytes differ")
	}
	if r := runClient(t, e.dir, nil, "wget", "--no-config", "-t", "3", "-T", "60", "--passive-ftp", "-O", "flat", e.url+"/distfiles/foo-1.0.tar.gz"); r.code != 0 {
		t.Fatalf("wget flat path: %d %s", r.code, r.out)
	}
	if !bytes.Equal(e.file("flat"), data) {
		t.Fatal("flat path: bytes differ")
	}
	// Percent-encoded names, as Portage requests them.
	enc := "a%20b%2Bc.tar.gz"
	if r := e.curl("-sSf", "-o", "enc", e.url+"/distfiles/"+hashDir("a b+c.tar.gz")+"/"+enc); r.code != 0 {
		t.Fatalf("curl encoded name: %d %s", r.code, r.out)
	}
	if !bytes.Equal(e.file("enc"), data[:1000]) {
		t.Fatal("encoded name: bytes differ")
	}
	if code, body := e.status(e.url + "/distfiles/layout.conf"); code != 200 || body != defaultLayoutConf {
		t.Fatalf("layout.conf: %d %q", code, body)
	}
	wrong := "00"
	if hh == wrong {
		wrong = "01"
	}
	if code, body := e.status(e.url + "/distfiles/" + wrong + "/foo-1.0.tar.gz"); code != 404 || !strings.Contains(body, "BLAKE2B") {
		t.Fatalf("wrong hash dir: %d %q", code, body)
	}
	if code, body := e.status(e.url + "/distfiles/missing-2.0.tar.xz"); code != 404 || !strings.Contains(body, "missing-2.0.tar.xz") || !strings.Contains(body, "not found") {
		t.Fatalf("missing distfile: %d %q", code, body)
	}
	// The wrong-directory request never reached the cache.
	for _, c := range e.cache.callList() {
		if strings.HasPrefix(c, "distfile ") && strings.Contains(c, wrong+"/") {
			t.Fatalf("unexpected cache call %q", c)
		}
	}
	if !slices.Contains(e.cache.callList(), "distfile a b+c.tar.gz") {
		t.Fatalf("encoded name not decoded: %v", e.cache.callList())
	}
}

func TestRangeHeadAndConditional(t *testing.T) {
	e := startServer(t, Options{})
	data := testData(400_000, 2)
	mod := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	e.cache.put("r.tar.gz", &fakeObject{data: data, mod: mod})
	u := e.url + "/distfiles/r.tar.gz"

	r := e.curl("-sS", "-r", "100-199", "-D", "h206", "-o", "part", u)
	if r.code != 0 || !bytes.Equal(e.file("part"), data[100:200]) {
		t.Fatalf("range: %d %s", r.code, r.out)
	}
	hdr := string(e.file("h206"))
	for _, want := range []string{"206", "Content-Range: bytes 100-199/400000", "Content-Length: 100"} {
		if !strings.Contains(hdr, want) {
			t.Fatalf("206 headers lack %q:\n%s", want, hdr)
		}
	}
	r = e.curl("-sS", "-r", "-50", "-o", "suffix", u)
	if r.code != 0 || !bytes.Equal(e.file("suffix"), data[len(data)-50:]) {
		t.Fatalf("suffix range: %d %s", r.code, r.out)
	}

	r = e.curl("-sS", "-r", "500000-", "-D", "h416", "-o", "/dev/null", u)
	hdr = string(e.file("h416"))
	if !strings.Contains(hdr, " 416") || !strings.Contains(hdr, "Content-Range: bytes */400000") {
		t.Fatalf("416 headers:\n%s", hdr)
	}

	r = e.curl("-sS", "-I", u)
	for _, want := range []string{"HTTP/1.1 200", "Content-Length: 400000", "Accept-Ranges: bytes", "Last-Modified: Fri, 01 Mar 2024 12:00:00 GMT"} {
		if !strings.Contains(r.out, want) {
			t.Fatalf("HEAD lacks %q:\n%s", want, r.out)
		}
	}
	if code, body := e.status("-H", "If-Modified-Since: Fri, 01 Mar 2024 12:00:00 GMT", u); code != 304 || body != "" {
		t.Fatalf("If-Modified-Since same date: %d %q", code, body)
	}
	if code, _ := e.status("-H", "If-Modified-Since: Thu, 29 Feb 2024 12:00:00 GMT", u); code != 200 {
		t.Fatalf("If-Modified-Since older date: %d", code)
	}

	// wget -c (Portage's RESUMECOMMAND) and curl -C - resume a partial file.
	os.WriteFile(filepath.Join(e.dir, "wres"), data[:123_456], 0o644)
	if r := runClient(t, e.dir, nil, "wget", "--no-config", "-c", "-t", "3", "-T", "60", "--passive-ftp", "-O", "wres", u); r.code != 0 {
		t.Fatalf("wget -c: %d %s", r.code, r.out)
	}
	if !bytes.Equal(e.file("wres"), data) {
		t.Fatal("wget -c: bytes differ")
	}
	os.WriteFile(filepath.Join(e.dir, "cres"), data[:777], 0o644)
	if r := e.curl("-sSf", "-C", "-", "-o", "cres", u); r.code != 0 {
		t.Fatalf("curl -C -: %d %s", r.code, r.out)
	}
	if !bytes.Equal(e.file("cres"), data) {
		t.Fatal("curl -C -: bytes differ")
	}
	if !strings.Contains(e.access.String(), `"/distfiles/r.tar.gz" 206 `) {
		t.Fatalf("access log lacks the 206:\n%s", e.access)
	}
}

func TestBrokenTransferIsAnError(t *testing.T) {
	e := startServer(t, Options{})
	data := testData(300_000, 3)
	e.cache.put("broken.tar.gz", &fakeObject{data: data, failAt: 100_000, outcome: distcache.Miss})
	e.cache.put("chunked-broken.tar.gz", &fakeObject{data: data, failAt: 100_000, unknownSize: true, outcome: distcache.Miss})
	e.cache.put("chunked.tar.gz", &fakeObject{data: data, unknownSize: true, outcome: distcache.Miss, chunkDelay: time.Millisecond})

	for _, name := range []string{"broken.tar.gz", "chunked-broken.tar.gz"} {
		u := e.url + "/distfiles/" + name
		r := e.curl("-sS", "-o", "c-"+name, u)
		if r.code == 0 {
			t.Fatalf("curl %s: succeeded on a broken transfer", name)
		}
		r = runClient(t, e.dir, nil, "wget", "--no-config", "-t", "1", "-T", "10", "-O", "w-"+name, u)
		if r.code == 0 {
			t.Fatalf("wget %s: succeeded on a broken transfer:\n%s", name, r.out)
		}
		if got := e.file("c-" + name); len(got) >= len(data) {
			t.Fatalf("%s: full size delivered", name)
		}
	}
	if !strings.Contains(e.access.String(), "ABORTED") {
		t.Fatalf("access log does not mark the aborted transfers:\n%s", e.access)
	}
	// Unknown size streams chunked and completes.
	r := e.curl("-sSf", "-D", "hch", "-o", "ch", e.url+"/distfiles/chunked.tar.gz")
	if r.code != 0 || !bytes.Equal(e.file("ch"), data) {
		t.Fatalf("chunked: %d %s", r.code, r.out)
	}
	if h := string(e.file("hch")); !strings.Contains(strings.ToLower(h), "transfer-encoding: chunked") {
		t.Fatalf("unknown size not chunked:\n%s", h)
	}
	// HTTP/1.0 has no chunked encoding: the answer waits for the length,
	// and a failed body is an error status, not a short 200.
	r = e.curl("-sS", "--http1.0", "-D", "h10", "-o", "c10", e.url+"/distfiles/chunked.tar.gz")
	if r.code != 0 || !bytes.Equal(e.file("c10"), data) || !strings.Contains(string(e.file("h10")), "Content-Length: 300000") {
		t.Fatalf("HTTP/1.0 unknown size: %d %s\n%s", r.code, r.out, e.file("h10"))
	}
	if code, body := e.status("--http1.0", e.url+"/distfiles/chunked-broken.tar.gz"); code != 502 || !strings.Contains(body, "upstream") {
		t.Fatalf("HTTP/1.0 broken unknown size: %d %q", code, body)
	}
	// A range on an object of unknown size waits for it and gets a 206.
	r = e.curl("-sSf", "-r", "1000-1999", "-o", "chr", e.url+"/distfiles/chunked.tar.gz")
	if r.code != 0 || !bytes.Equal(e.file("chr"), data[1000:2000]) {
		t.Fatalf("range on unknown size: %d %s", r.code, r.out)
	}
}

func TestAllowList(t *testing.T) {
	e := startServer(t, Options{Allow: acl.MustParse("127.0.0.1/32")})
	e.cache.put("x.tar.gz", &fakeObject{data: []byte("hello")})
	for _, path := range []string{"/", "/metrics", "/distfiles/x.tar.gz", "/distfiles/layout.conf", "/fetch/x.tar.gz"} {
		code, body := e.status("--interface", "127.0.0.2", e.url+path)
		if code != 403 || !strings.Contains(body, "not in the allow list") {
			t.Fatalf("%s from 127.0.0.2: %d %q", path, code, body)
		}
		if code, _ := e.status(e.url + path); code != 200 {
			t.Fatalf("%s from 127.0.0.1: %d", path, code)
		}
	}
	// Proxy requests too.
	code, _ := e.status("--interface", "127.0.0.2", "-x", e.url, "http://203.0.113.9/distfiles/x.tar.gz")
	if code != 403 {
		t.Fatalf("proxy from 127.0.0.2: %d", code)
	}
	if !strings.Contains(e.access.String(), "127.0.0.2:") || !strings.Contains(e.access.String(), " 403 ") {
		t.Fatalf("no access-log line for the refused client:\n%s", e.access)
	}
	for _, c := range e.cache.callList() {
		if c == "distfile x.tar.gz" {
			continue
		}
		t.Fatalf("unexpected cache call %q", c)
	}
}

func TestTraversalRefused(t *testing.T) {
	alias := t.TempDir()
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("SECRET"), 0o644)
	os.WriteFile(filepath.Join(alias, "pkg.tbz2"), []byte("package"), 0o644)
	os.Symlink(filepath.Join(outside, "secret"), filepath.Join(alias, "escape"))
	os.Symlink("../"+filepath.Base(outside)+"/secret", filepath.Join(alias, "escape-rel"))
	e := startServer(t, Options{Aliases: []config.Alias{{Dir: alias, Name: "All"}}})

	for _, p := range []string{
		"/distfiles/../../etc/passwd",
		"/distfiles/%2e%2e/%2e%2e/etc/passwd",
		"/distfiles/ab/%2E%2E",
		"/distfiles/a%2fb",
		"/distfiles/a%2F..%2F..%2Fetc%2Fpasswd",
		"/distfiles/a%5c..%5cb",
		"/distfiles/a%00b",
		"/All/../" + filepath.Base(outside) + "/secret",
		"/All/%2e%2e/" + filepath.Base(outside) + "/secret",
		"/All//etc/passwd",
		"/fetch/..%2fx",
	} {
		code, body := e.status("--path-as-is", e.url+p)
		if code != 400 || !strings.Contains(body, "traversal") {
			t.Fatalf("%s: %d %q", p, code, body)
		}
	}
	for _, p := range []string{"/All/escape", "/All/escape-rel"} {
		code, body := e.status(e.url + p)
		if code != 404 || strings.Contains(body, "SECRET") {
			t.Fatalf("%s: %d %q", p, code, body)
		}
	}
	if calls := e.cache.callList(); len(calls) != 0 {
		t.Fatalf("traversal attempts reached the cache: %v", calls)
	}
	// The alias itself works, with an index.
	if code, body := e.status(e.url + "/All/pkg.tbz2"); code != 200 || body != "package" {
		t.Fatalf("alias file: %d %q", code, body)
	}
	if code, body := e.status(e.url + "/All/"); code != 200 || !strings.Contains(body, "pkg.tbz2") {
		t.Fatalf("alias index: %d %q", code, body)
	}
}

// upstreamPort starts a loopback server standing for the mirror and
// returns its host:port.
func upstreamPort(t *testing.T) string {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "upstream")
	}))
	t.Cleanup(ts.Close)
	return strings.TrimPrefix(ts.URL, "http://")
}

func TestForwardProxy(t *testing.T) {
	up := upstreamPort(t)
	pol, err := NewPolicy([]string{"http://" + up + "/"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := startServer(t, Options{Policy: pol})
	data := testData(200_000, 4)
	e.cache.put("foo-2.tar.bz2", &fakeObject{data: data})
	e.cache.put("urls/"+strings.Replace(up, ":", "_", 1)+"/dir/page.txt", &fakeObject{data: []byte("page")})
	proxyEnv := []string{"http_proxy=" + e.url}

	// The classic http-replicator client line.
	r := runClient(t, e.dir, proxyEnv, "wget", "--no-config", "-t", "5", "--passive-ftp", "http://"+up+"/distfiles/foo-2.tar.bz2", "-O", "classic")
	if r.code != 0 || !bytes.Equal(e.file("classic"), data) {
		t.Fatalf("classic wget: %d %s", r.code, r.out)
	}
	// Portage's FETCHCOMMAND with a hashed mirror path on a host that is
	// not allowed as an origin: served by name from the cache/mirrors.
	r = runClient(t, e.dir, proxyEnv, "wget", "--no-config", "-t", "3", "-T", "60", "--passive-ftp", "-O", "portage", "http://10.0.0.1/gentoo/distfiles/"+hashDir("foo-2.tar.bz2")+"/foo-2.tar.bz2")
	if r.code != 0 || !bytes.Equal(e.file("portage"), data) {
		t.Fatalf("portage wget: %d %s", r.code, r.out)
	}
	calls := e.cache.callList()
	if !slices.Contains(calls, "distfile foo-2.tar.bz2 http://"+up+"/distfiles/foo-2.tar.bz2") {
		t.Fatalf("allowed origin not passed: %v", calls)
	}
	if !slices.Contains(calls, "distfile foo-2.tar.bz2") {
		t.Fatalf("refused origin passed along: %v", calls)
	}
	// Other URLs are cached by host and path, volatile.
	r = runClient(t, e.dir, proxyEnv, "curl", "-sSf", "-o", "page", "http://"+up+"/dir/page.txt")
	if r.code != 0 || string(e.file("page")) != "page" {
		t.Fatalf("proxied page: %d %s", r.code, r.out)
	}
	if !slices.Contains(e.cache.callList(), "get urls/"+strings.Replace(up, ":", "_", 1)+"/dir/page.txt http://"+up+"/dir/page.txt volatile=true") {
		t.Fatalf("page not fetched as volatile url object: %v", e.cache.callList())
	}

	// No open proxy: loopback on another port, private, link-local (cloud
	// metadata), IPv6 loopback.
	_, upPort, _ := net.SplitHostPort(up)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	other := l.Addr().String()
	l.Close()
	before := len(e.cache.callList())
	for _, target := range []string{
		"http://" + other + "/secret",
		"http://localhost:" + upPort + "/secret",
		"http://10.0.0.1/admin",
		"http://192.168.1.1/",
		"http://169.254.169.254/latest/meta-data/",
		"http://[::1]:" + upPort + "/secret",
		"http://0.0.0.0:" + upPort + "/secret",
	} {
		code, body := e.status("-x", e.url, target)
		if code != 403 || !strings.Contains(body, "not an open proxy") {
			t.Fatalf("open proxy to %s: %d %q", target, code, body)
		}
	}
	if after := e.cache.callList(); len(after) != before {
		t.Fatalf("refused destinations reached the cache: %v", after[before:])
	}
	// CONNECT is refused with a clear status.
	r = e.curl("-sS", "-v", "-p", "-x", e.url, "https://"+up+"/")
	if r.code == 0 || !strings.Contains(r.out, "405") {
		t.Fatalf("CONNECT: %d %s", r.code, r.out)
	}
	// Query strings are part of the key.
	e.status("-x", e.url, "http://"+up+"/cgi?a=1&b=2")
	last := e.cache.callList()[len(e.cache.callList())-1]
	if !strings.Contains(last, "/cgi@q") || !strings.Contains(last, "http://"+up+"/cgi?a=1&b=2") {
		t.Fatalf("query URL: %q", last)
	}
}

func TestFetchThrough(t *testing.T) {
	e := startServer(t, Options{Policy: &Policy{}, Verifier: fakeVerifier{"known-1.tar.gz": 5000}})
	data := testData(5000, 5)
	e.cache.put("known-1.tar.gz", &fakeObject{data: data, outcome: distcache.Miss})
	e.cache.put("mirrored-1.tar.gz", &fakeObject{data: data[:300]})

	// Portage's FETCHCOMMAND as documented, with ${FILE} = name.__download__
	// and a URI holding "?" and "&".
	uri := "https://203.0.113.7/dl/known-1.tar.gz?raw=1&x=y"
	r := runClient(t, e.dir, nil, "wget", "--no-config", "-t", "3", "-T", "60", "--passive-ftp", "-O", "known-1.tar.gz.__download__",
		e.url+"/fetch/known-1.tar.gz.__download__?uri="+uri)
	if r.code != 0 || !bytes.Equal(e.file("known-1.tar.gz.__download__"), data) {
		t.Fatalf("fetch-through: %d %s", r.code, r.out)
	}
	_ = r
	calls := e.cache.callList()
	// 203.0.113.0/24 is documentation space, so not public: the origin is refused
	// even for a known name.
	if !slices.Contains(calls, "distfile known-1.tar.gz") {
		t.Fatalf("calls: %v", calls)
	}
	uri = "https://8.8.8.8/dl/known-1.tar.gz?raw=1&x=y"
	e.status(e.url + "/fetch/known-1.tar.gz?uri=" + uri)
	if !slices.Contains(e.cache.callList(), "distfile known-1.tar.gz "+uri) {
		t.Fatalf("origin not passed for a known name: %v", e.cache.callList())
	}
	// A name with no DIST entry: no origin; served when a mirror has it...
	if code, body := e.status(e.url + "/fetch/mirrored-1.tar.gz?uri=https://8.8.8.8/mirrored-1.tar.gz"); code != 200 || body != string(data[:300]) {
		t.Fatalf("mirrored name: %d", code)
	}
	if !slices.Contains(e.cache.callList(), "distfile mirrored-1.tar.gz") {
		t.Fatalf("origin passed for an unknown name: %v", e.cache.callList())
	}
	// ...and refused with the reason otherwise.
	code, body := e.status(e.url + "/fetch/evil.tar.gz?uri=https://8.8.8.8/evil.tar.gz")
	if code != 403 || !strings.Contains(body, "no DIST entry") {
		t.Fatalf("unknown name: %d %q", code, body)
	}
}

func TestBinpkgsLocalThenUpstream(t *testing.T) {
	pkgdir := t.TempDir()
	os.WriteFile(filepath.Join(pkgdir, "local.gpkg.tar"), []byte("local"), 0o644)
	e := startServer(t, Options{Binpkgs: http.FileServer(http.Dir(pkgdir)), BinhostUpstream: "https://binhost.example.org/amd64/"})
	e.cache.put("binhost/dev-libs/foo/foo-1-1.gpkg.tar", &fakeObject{data: []byte("remote")})
	e.cache.put("binhost/Packages", &fakeObject{data: []byte("PACKAGES: 1\n"), outcome: distcache.Revalidated})

	if code, body := e.status(e.url + "/binpkgs/local.gpkg.tar"); code != 200 || body != "local" {
		t.Fatalf("local: %d %q", code, body)
	}
	if code, body := e.status(e.url + "/binpkgs/dev-libs/foo/foo-1-1.gpkg.tar"); code != 200 || body != "remote" {
		t.Fatalf("upstream: %d %q", code, body)
	}
	if code, _ := e.status("-H", "If-Modified-Since: "+time.Now().UTC().Format(http.TimeFormat), e.url+"/binpkgs/Packages"); code != 304 {
		t.Fatalf("Packages 304: %d", code)
	}
	calls := e.cache.callList()
	want := []string{
		"get binhost/dev-libs/foo/foo-1-1.gpkg.tar https://binhost.example.org/amd64/dev-libs/foo/foo-1-1.gpkg.tar volatile=false",
		"get binhost/Packages https://binhost.example.org/amd64/Packages volatile=true",
	}
	if !slices.Equal(calls, want) {
		t.Fatalf("calls:\n%v\nwant\n%v", calls, want)
	}
	if code, body := e.status(e.url + "/binpkgs/nope.gpkg.tar"); code != 404 || !strings.Contains(body, "not found") {
		t.Fatalf("missing: %d %q", code, body)
	}
}

func TestStatusMetricsAndAccessLog(t *testing.T) {
	e := startServer(t, Options{Stats: func() (int64, int) { return 12345, 7 }})
	e.cache.put("s.tar.gz", &fakeObject{data: []byte("12345")})
	if code, _ := e.status(e.url + "/distfiles/s.tar.gz"); code != 200 {
		t.Fatal(code)
	}
	line := ""
	for _, l := range strings.Split(e.access.String(), "\n") {
		if strings.Contains(l, "/distfiles/s.tar.gz") {
			line = l
		}
	}
	// client, method, URL, status, bytes, outcome, duration
	for _, want := range []string{"127.0.0.1:", " GET ", `"/distfiles/s.tar.gz"`, " 200 5 HIT ", "s"} {
		if !strings.Contains(line, want) {
			t.Fatalf("access line %q lacks %q", line, want)
		}
	}
	code, body := e.status(e.url + "/")
	if code != 200 || !strings.Contains(body, "7 files, 12345 bytes") || !strings.Contains(body, "/distfiles/s.tar.gz") || !strings.Contains(body, "uptime") {
		t.Fatalf("status page: %d %q", code, body)
	}
	code, body = e.status(e.url + "/metrics")
	if code != 200 || !strings.Contains(body, `lanmirror_http_requests_total{code="200",result="HIT"}`) {
		t.Fatalf("metrics: %d", code)
	}
	if code, body := e.status("-X", "POST", e.url+"/distfiles/s.tar.gz"); code != 405 || !strings.Contains(body, "read-only") {
		t.Fatalf("POST: %d %q", code, body)
	}
	for _, tc := range []struct {
		err  error
		code int
	}{
		{fmt.Errorf("x: %w", distcache.ErrCorrupt), 502},
		{fmt.Errorf("x: %w", distcache.ErrUpstream), 502},
		{fmt.Errorf("x: %w: %w", distcache.ErrUpstream, errTimeout{}), 504},
		{fmt.Errorf("x: %w", distcache.ErrBadName), 400},
		{fmt.Errorf("distcache: store: disk full"), 500},
	} {
		e.cache.put("e.tar.gz", &fakeObject{err: tc.err})
		code, body := e.status(e.url + "/distfiles/e.tar.gz")
		if code != tc.code || !strings.Contains(body, tc.err.Error()) {
			t.Fatalf("%v: %d %q", tc.err, code, body)
		}
	}
}

type errTimeout struct{}

func (errTimeout) Error() string { return "i/o timeout" }
func (errTimeout) Timeout() bool { return true }

// Portage reads a mirror's layout.conf through FETCHCOMMAND, and proxy
// clients may send requests for this server itself in absolute form.
func TestFetchLayoutConfAndSelfProxy(t *testing.T) {
	e := startServer(t, Options{Policy: &Policy{}})
	code, body := e.status(e.url + "/fetch/.layout.conf.ws1?uri=http://ws1:8080/distfiles/layout.conf")
	if code != 200 || body != defaultLayoutConf {
		t.Fatalf("layout.conf through fetch: %d %q", code, body)
	}
	// Absolute-form request naming this server: served by the local
	// routes (the status page), not refused as a loopback destination.
	code, body = e.status("-x", e.url, e.url+"/")
	if code != 200 || !strings.Contains(body, "uptime") {
		t.Fatalf("self through the proxy: %d %q", code, body)
	}
	if calls := e.cache.callList(); len(calls) != 0 {
		t.Fatalf("cache calls: %v", calls)
	}
}

// A client that stops reading is disconnected after WriteIdleTimeout, and
// the per-write deadline does not outlive its response on a keep-alive
// connection.
func TestStalledClientDisconnected(t *testing.T) {
	const writeIdleTimeout = 300 * time.Millisecond
	big := bytes.Repeat([]byte("0123456789abcdef"), 2<<20) // 32 MiB, more than socket buffers hold
	alias := t.TempDir()
	os.WriteFile(filepath.Join(alias, "big.tbz2"), big, 0o644)
	e := startServer(t, Options{Aliases: []config.Alias{{Dir: alias, Name: "All"}}, WriteIdleTimeout: writeIdleTimeout})
	e.cache.put("big.tar", &fakeObject{data: big})
	e.cache.put("stream.tar", &fakeObject{data: big, outcome: distcache.Miss})
	e.cache.put("small.tar", &fakeObject{data: []byte("small")})

	for _, path := range []string{"/distfiles/big.tar", "/distfiles/stream.tar", "/All/big.tbz2"} {
		c, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
		want := `"` + path + `" 200 `
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			line := ""
			for _, l := range strings.Split(e.access.String(), "\n") {
				if strings.Contains(l, want) {
					line = l
				}
			}
			// The handler ended (the line is written) without sending
			// everything: the write deadline cut the client off.
			if line != "" {
				if strings.Contains(line, fmt.Sprintf(" 200 %d ", len(big))) {
					t.Fatalf("%s: the stalled client got everything?\n%s", path, line)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: stalled client not disconnected:\n%s", path, e.access)
			}
		}
	}

	reused := 0
	client := &http.Client{}
	for i := range 2 {
		if i == 1 {
			time.Sleep(3 * writeIdleTimeout)
		}
		// The second request goes to a route that sets no deadline of
		// its own: a deadline left over from the first would break it.
		path, want := "/distfiles/small.tar", "small"
		if i == 1 {
			path, want = "/distfiles/layout.conf", defaultLayoutConf
		}
		req, _ := http.NewRequest("GET", e.url+path, nil)
		req = req.WithContext(httptraceReused(req, &reused))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("request %d on a kept-alive connection: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != want {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if reused != 1 {
		t.Fatalf("connection reused %d times, want 1", reused)
	}
}

// readyVerifier knows its names only once ready is closed.
type readyVerifier struct {
	ready chan struct{}
	names fakeVerifier
}

func (v *readyVerifier) Ready() <-chan struct{} { return v.ready }
func (v *readyVerifier) Lookup(name string) (gentoo.Dist, bool) {
	select {
	case <-v.ready:
		return v.names.Lookup(name)
	default:
		return gentoo.Dist{}, false
	}
}

// Fetch-through waits for a DIST index still being built instead of
// refusing a name it will know.
func TestFetchThroughWaitsForTheIndex(t *testing.T) {
	v := &readyVerifier{ready: make(chan struct{}), names: fakeVerifier{"late-1.tar.gz": 10}}
	e := startServer(t, Options{Policy: &Policy{}, Verifier: v})
	e.cache.put("late-1.tar.gz", &fakeObject{data: []byte("0123456789")})
	time.AfterFunc(300*time.Millisecond, func() { close(v.ready) })
	code, body := e.status(e.url + "/fetch/late-1.tar.gz?uri=https://8.8.8.8/late-1.tar.gz")
	if code != 200 || body != "0123456789" {
		t.Fatalf("%d %q", code, body)
	}
	if !slices.Contains(e.cache.callList(), "distfile late-1.tar.gz https://8.8.8.8/late-1.tar.gz") {
		t.Fatalf("origin not passed once the index was ready: %v", e.cache.callList())
	}
}
