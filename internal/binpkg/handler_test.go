package binpkg

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/gentoo"
	"github.com/lanmirror/lanmirror/internal/testutil"
)

// testPkg is one package of the test PKGDIR.
type testPkg struct {
	path string
	md   meta
	gpkg string // compression extension of a gpkg; "-" for an xpak package
}

var testPkgs = []testPkg{
	{"app-misc/hello-1.0.tbz2", meta{"CATEGORY": "app-misc\n", "PF": "hello-1.0\n", "SLOT": "0\n", "USE": "amd64 nls\n", "KEYWORDS": "amd64 ~x86\n", "EAPI": "8\n", "DESCRIPTION": "Say hello\n"}, "-"},
	{"All/foo-2.0-r1.tbz2", meta{"CATEGORY": "dev-libs\n", "PF": "foo-2.0-r1\n", "SLOT": "2\n", "IUSE": "+ssl test\n", "USE": "ssl\n"}, "-"},
	{"dev-util/bar/bar-3.1-2.gpkg.tar", meta{"CATEGORY": "dev-util\n", "PF": "bar-3.1\n", "SLOT": "0/3.1\n", "BUILD_ID": "2\n", "KEYWORDS": "amd64\n", "RDEPEND": "dev-libs/foo:2\n"}, ".zst"},
	{"dev-util/bar/bar-3.1-3.xpak", meta{"CATEGORY": "dev-util\n", "PF": "bar-3.1\n", "SLOT": "0/3.1\n", "BUILD_ID": "3\n"}, "-"},
	{"sys-apps/baz-1.gpkg.tar", meta{"CATEGORY": "sys-apps\n", "PF": "baz-1\n", "SLOT": "0\n", "repository": "gentoo\n"}, ".gz"},
}

var pkgTime = time.Unix(1700000000, 0)

// newPkgDir writes the test packages (and a broken one) into a new PKGDIR
// and returns it with each package's bytes.
func newPkgDir(t *testing.T) (string, map[string][]byte) {
	dir := t.TempDir()
	files := map[string][]byte{}
	for i, p := range testPkgs {
		var b []byte
		if p.gpkg == "-" {
			b = xpakPackage(t, p.md)
		} else {
			b = gpkgPackage(t, strings.TrimSuffix(filepath.Base(p.path), extGpkg), p.gpkg, p.md)
		}
		files[p.path] = b
		writeFile(t, dir, p.path, b, pkgTime.Add(time.Duration(i)*time.Hour))
	}
	writeFile(t, dir, "sys-apps/broken-1.tbz2", []byte("not a package"), pkgTime)
	writeFile(t, dir, "sys-apps/notes.txt", []byte("ignored"), pkgTime)
	return dir, files
}

func newTestHandler(t *testing.T, dir string) *Handler {
	t.Helper()
	h, err := newHandler(dir, nil, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// do runs one request through h.
func do(h http.Handler, method, path string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "http://binhost.test/", nil)
	r.URL.Path = path
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func parseIndex(t *testing.T, b []byte) *gentoo.PackagesIndex {
	t.Helper()
	ix, err := gentoo.ReadPackages(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestGeneratedPackagesBothLayouts(t *testing.T) {
	dir, files := newPkgDir(t)
	h := newTestHandler(t, dir)
	w := do(h, "GET", "/Packages")
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q", ct)
	}
	ix := parseIndex(t, w.Body.Bytes())
	if ix.Header["VERSION"] != "0" || ix.Header["PACKAGES"] != strconv.Itoa(len(testPkgs)) || ix.Header["TIMESTAMP"] == "" {
		t.Errorf("header %v", ix.Header)
	}
	lm, err := http.ParseTime(w.Header().Get("Last-Modified"))
	if err != nil || strconv.FormatInt(lm.Unix(), 10) != ix.Header["TIMESTAMP"] {
		t.Errorf("Last-Modified %q vs TIMESTAMP %s", w.Header().Get("Last-Modified"), ix.Header["TIMESTAMP"])
	}
	byPath := map[string]gentoo.PackageFields{}
	for _, e := range ix.Packages {
		byPath[e["PATH"]] = e
	}
	if len(byPath) != len(testPkgs) {
		t.Fatalf("entries for %d paths, want %d:\n%s", len(byPath), len(testPkgs), w.Body)
	}
	for i, p := range testPkgs {
		e := byPath[p.path]
		if e == nil {
			t.Errorf("%s missing", p.path)
			continue
		}
		b := files[p.path]
		m, s := md5.Sum(b), sha1.Sum(b)
		want := map[string]string{
			"CPV":   strings.TrimSpace(p.md["CATEGORY"]) + "/" + strings.TrimSpace(p.md["PF"]),
			"SIZE":  strconv.Itoa(len(b)),
			"MTIME": strconv.FormatInt(pkgTime.Add(time.Duration(i)*time.Hour).Unix(), 10),
			"MD5":   hex.EncodeToString(m[:]),
			"SHA1":  hex.EncodeToString(s[:]),
			"SLOT":  strings.TrimSpace(p.md["SLOT"]),
		}
		for k, v := range p.md {
			switch k {
			case "CATEGORY", "PF":
			case "DESCRIPTION":
				want["DESC"] = strings.TrimSpace(v)
			case "repository":
				want["REPO"] = strings.TrimSpace(v)
			default:
				want[k] = strings.TrimSpace(v)
			}
		}
		want["PATH"] = p.path
		for k, v := range want {
			if e[k] != v {
				t.Errorf("%s: %s = %q, want %q", p.path, k, e[k], v)
			}
		}
		if len(e) != len(want) {
			t.Errorf("%s: entry %v has keys beyond %v", p.path, e, want)
		}
	}

	// Packages.gz is the same index, compressed.
	wz := do(h, "GET", "/Packages.gz")
	if wz.Code != 200 || wz.Header().Get("Content-Type") != "application/gzip" {
		t.Fatalf("Packages.gz: %d %q", wz.Code, wz.Header().Get("Content-Type"))
	}
	if got := gunzip(t, wz.Body.Bytes()); !bytes.Equal(got, w.Body.Bytes()) {
		t.Errorf("Packages.gz decompresses to\n%s\nwant\n%s", got, w.Body)
	}

	// Unchanged directory: the same bytes, and 304 for If-Modified-Since.
	if w2 := do(h, "GET", "/Packages"); !bytes.Equal(w2.Body.Bytes(), w.Body.Bytes()) {
		t.Error("index changed without a change in the directory")
	}
	if w3 := do(h, "GET", "/Packages", "If-Modified-Since", w.Header().Get("Last-Modified")); w3.Code != http.StatusNotModified || w3.Body.Len() != 0 {
		t.Errorf("If-Modified-Since: %d, %d bytes", w3.Code, w3.Body.Len())
	}
	if w3 := do(h, "GET", "/Packages.gz", "If-Modified-Since", wz.Header().Get("Last-Modified")); w3.Code != http.StatusNotModified {
		t.Errorf("Packages.gz If-Modified-Since: %d", w3.Code)
	}
	if w3 := do(h, "GET", "/Packages", "If-Modified-Since", lm.Add(-time.Second).UTC().Format(http.TimeFormat)); w3.Code != 200 {
		t.Errorf("older If-Modified-Since: %d", w3.Code)
	}

	// A new package: the index is regenerated with a later TIMESTAMP.
	np := xpakPackage(t, meta{"CATEGORY": "app-misc", "PF": "new-1", "SLOT": "0"})
	writeFile(t, dir, "app-misc/new-1.tbz2", np, time.Now())
	w4 := do(h, "GET", "/Packages")
	ix4 := parseIndex(t, w4.Body.Bytes())
	if len(ix4.Packages) != len(testPkgs)+1 || !strings.Contains(w4.Body.String(), "CPV: app-misc/new-1\n") {
		t.Errorf("after adding a package:\n%s", w4.Body)
	}
	t1, _ := strconv.Atoi(ix.Header["TIMESTAMP"])
	t4, _ := strconv.Atoi(ix4.Header["TIMESTAMP"])
	if t4 <= t1 {
		t.Errorf("TIMESTAMP %d after change, was %d", t4, t1)
	}
	if w5 := do(h, "GET", "/Packages", "If-Modified-Since", w.Header().Get("Last-Modified")); w5.Code != 200 {
		t.Errorf("If-Modified-Since with the old date after a change: %d", w5.Code)
	}
	// A removed package goes away.
	os.Remove(filepath.Join(dir, "sys-apps", "baz-1.gpkg.tar"))
	if w6 := do(h, "GET", "/Packages"); strings.Contains(w6.Body.String(), "sys-apps/baz") {
		t.Error("removed package still listed")
	}
}

func TestDiskPackagesServedWhenFresh(t *testing.T) {
	dir, _ := newPkgDir(t)
	h := newTestHandler(t, dir)
	gen := do(h, "GET", "/Packages").Body.Bytes()

	// The PKGDIR's own index (as Portage would write it: here the generated
	// one with an extra header key and a later TIMESTAMP, its mtime).
	genTS := parseIndex(t, gen).Header["TIMESTAMP"]
	own := strings.Replace(string(gen), "PACKAGES:", "ARCH: amd64\nPACKAGES:", 1)
	own = strings.Replace(own, "TIMESTAMP: "+genTS, "TIMESTAMP: "+strconv.FormatInt(mustAtoi(t, genTS)+5, 10), 1)
	ownTime := time.Now().Add(-time.Minute).Truncate(time.Second)
	writeFile(t, dir, "Packages", []byte(own), ownTime)
	w := do(h, "GET", "/Packages")
	if w.Body.String() != own {
		t.Fatalf("fresh on-disk Packages not served as is:\n%s", w.Body)
	}
	if lm, _ := http.ParseTime(w.Header().Get("Last-Modified")); !lm.Equal(ownTime) {
		t.Errorf("Last-Modified %q, want the file's mtime %v", w.Header().Get("Last-Modified"), ownTime)
	}
	if w := do(h, "GET", "/Packages", "If-Modified-Since", ownTime.UTC().Format(http.TimeFormat)); w.Code != 304 {
		t.Errorf("If-Modified-Since on disk index: %d", w.Code)
	}
	// Without a Packages.gz on disk, Packages.gz is the same index gzipped.
	if got := gunzip(t, do(h, "GET", "/Packages.gz").Body.Bytes()); string(got) != own {
		t.Errorf("Packages.gz of the on-disk index:\n%s", got)
	}
	// With a fresh Packages.gz on disk, that file is served as is.
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write([]byte(own))
	zw.Close()
	writeFile(t, dir, "Packages.gz", zb.Bytes(), ownTime)
	if wz := do(h, "GET", "/Packages.gz"); !bytes.Equal(wz.Body.Bytes(), zb.Bytes()) {
		t.Error("fresh on-disk Packages.gz not served as is")
	}

	// A package rewritten after the index: the on-disk index is stale, a
	// generated one is served, with a TIMESTAMP above the stale one's, the
	// new MTIME, and the stale index's header (the build host's settings).
	newTime := time.Now().Truncate(time.Second)
	writeFile(t, dir, testPkgs[0].path, xpakPackage(t, testPkgs[0].md), newTime)
	w = do(h, "GET", "/Packages")
	if w.Body.String() == own {
		t.Fatal("stale on-disk Packages served")
	}
	ix := parseIndex(t, w.Body.Bytes())
	if len(ix.Packages) != len(testPkgs) {
		t.Errorf("%d packages in regenerated index", len(ix.Packages))
	}
	old := parseIndex(t, []byte(own))
	if ts, _ := strconv.ParseInt(ix.Header["TIMESTAMP"], 10, 64); ts <= mustAtoi(t, old.Header["TIMESTAMP"]) {
		t.Errorf("TIMESTAMP %d not above the stale index's %s", ts, old.Header["TIMESTAMP"])
	}
	if ix.Header["ARCH"] != "amd64" {
		t.Errorf("header of the stale index not kept: %v", ix.Header)
	}
	for _, e := range ix.Packages {
		if e["PATH"] == testPkgs[0].path && e["MTIME"] != strconv.FormatInt(newTime.Unix(), 10) {
			t.Errorf("MTIME %s, want %d", e["MTIME"], newTime.Unix())
		}
	}
	if wz := do(h, "GET", "/Packages.gz"); !bytes.Equal(gunzip(t, wz.Body.Bytes()), w.Body.Bytes()) {
		t.Error("Packages.gz differs from the generated Packages")
	}

	// The change undone (the on-disk index matches the files again): its
	// TIMESTAMP is older than the generated one clients may hold, so an
	// index with a later TIMESTAMP is generated instead.
	writeFile(t, dir, testPkgs[0].path, xpakPackage(t, testPkgs[0].md), pkgTime)
	w5 := do(h, "GET", "/Packages")
	ix5 := parseIndex(t, w5.Body.Bytes())
	if w5.Body.String() == own || mustAtoi(t, ix5.Header["TIMESTAMP"]) <= mustAtoi(t, ix.Header["TIMESTAMP"]) {
		t.Errorf("after the change was undone: TIMESTAMP %s, was %s", ix5.Header["TIMESTAMP"], ix.Header["TIMESTAMP"])
	}
	if w := do(h, "GET", "/Packages", "If-Modified-Since", w.Header().Get("Last-Modified")); w.Code != 200 {
		t.Errorf("If-Modified-Since of the previous index: %d, want 200", w.Code)
	}
	// A newer on-disk index (Portage rewrote it) is served as is again.
	newer := strings.Replace(own, "TIMESTAMP: "+old.Header["TIMESTAMP"], "TIMESTAMP: "+strconv.FormatInt(mustAtoi(t, ix5.Header["TIMESTAMP"])+10, 10), 1)
	writeFile(t, dir, "Packages", []byte(newer), time.Now())
	if got := do(h, "GET", "/Packages").Body.String(); got != newer {
		t.Errorf("newer on-disk index not served:\n%s", got)
	}
}

func TestServeFiles(t *testing.T) {
	dir, files := newPkgDir(t)
	h := newTestHandler(t, dir)
	for _, p := range testPkgs {
		w := do(h, "GET", "/"+p.path)
		if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), files[p.path]) {
			t.Errorf("%s: %d, %d bytes", p.path, w.Code, w.Body.Len())
		}
		if w.Header().Get("Last-Modified") == "" || w.Header().Get("Accept-Ranges") != "bytes" {
			t.Errorf("%s: headers %v", p.path, w.Header())
		}
	}
	p := testPkgs[2].path
	b := files[p]
	// HEAD: the headers of a GET, no body.
	w := do(h, "HEAD", "/"+p)
	if w.Code != 200 || w.Body.Len() != 0 || w.Header().Get("Content-Length") != strconv.Itoa(len(b)) {
		t.Errorf("HEAD: %d, %d bytes, Content-Length %q", w.Code, w.Body.Len(), w.Header().Get("Content-Length"))
	}
	// Range.
	w = do(h, "GET", "/"+p, "Range", "bytes=100-199")
	if w.Code != http.StatusPartialContent || !bytes.Equal(w.Body.Bytes(), b[100:200]) ||
		w.Header().Get("Content-Range") != "bytes 100-199/"+strconv.Itoa(len(b)) {
		t.Errorf("Range: %d %q", w.Code, w.Header().Get("Content-Range"))
	}
	w = do(h, "GET", "/"+p, "Range", "bytes="+strconv.Itoa(len(b)+10)+"-")
	if w.Code != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("Range past the end: %d", w.Code)
	}
	w = do(h, "GET", "/Packages", "Range", "bytes=0-9")
	if w.Code != http.StatusPartialContent || w.Body.String() != "PACKAGES: " {
		t.Errorf("Range on Packages: %d %q", w.Code, w.Body)
	}
	// If-Modified-Since on a package.
	w = do(h, "GET", "/"+p, "If-Modified-Since", time.Now().UTC().Format(http.TimeFormat))
	if w.Code != http.StatusNotModified {
		t.Errorf("If-Modified-Since on a package: %d", w.Code)
	}
	for path, code := range map[string]int{
		"/app-misc/none-1.tbz2": 404,
		"/app-misc/":            404,
		"/app-misc":             404,
		"/.hidden":              404,
	} {
		if w := do(h, "GET", path); w.Code != code || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") || w.Body.Len() == 0 {
			t.Errorf("%s: %d %q %q, want %d with a text body", path, w.Code, w.Header().Get("Content-Type"), w.Body, code)
		}
	}
	if w := do(h, "POST", "/Packages"); w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") == "" {
		t.Errorf("POST: %d", w.Code)
	}
}

func TestTraversalRefused(t *testing.T) {
	dir, _ := newPkgDir(t)
	outside := t.TempDir()
	secret := "top secret outside the PKGDIR"
	os.WriteFile(filepath.Join(outside, "secret"), []byte(secret), 0o644)
	os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dir, "app-misc", "link-1.tbz2"))
	os.Symlink(outside, filepath.Join(dir, "escape"))
	h := newTestHandler(t, dir)
	for _, p := range []string{
		"/../" + filepath.Base(outside) + "/secret",
		"/app-misc/../../" + filepath.Base(outside) + "/secret",
		"/app-misc/link-1.tbz2",
		"/escape/secret",
		"/./Packages",
		"//etc/passwd",
		"/app-misc\\..\\..\\secret",
		"/a\x00b",
	} {
		w := do(h, "GET", p)
		if w.Code < 400 || strings.Contains(w.Body.String(), secret) {
			t.Errorf("%q: %d %q", p, w.Code, w.Body)
		}
	}
	// The symlink escaping the PKGDIR is not listed either.
	if strings.Contains(do(h, "GET", "/Packages").Body.String(), "link-1") {
		t.Error("escaping symlink listed in Packages")
	}

	// The same through a real server and curl --path-as-is (raw ../ and
	// encoded %2e%2e on the wire).
	curl := lookCurl(t)
	srv := httptest.NewServer(http.StripPrefix("/binpkgs", h))
	t.Cleanup(srv.Close)
	for _, p := range []string{"/binpkgs/../../" + filepath.Base(outside) + "/secret", "/binpkgs/%2e%2e/%2e%2e/" + filepath.Base(outside) + "/secret", "/binpkgs/escape/secret"} {
		out, code := runCurl(t, curl, "--path-as-is", srv.URL+p)
		if code < 400 || strings.Contains(string(out), secret) {
			t.Errorf("curl %s: %d %q", p, code, out)
		}
	}
}

func mustAtoi(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func lookCurl(t *testing.T) string {
	t.Helper()
	return testutil.RequireTool(t, "curl")
}

// runCurl fetches url with stock curl and returns the body and HTTP status.
func runCurl(t *testing.T, curl string, args ...string) ([]byte, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := filepath.Join(t.TempDir(), "body")
	args = append([]string{"-sS", "--noproxy", "*", "-o", out, "-w", "%{http_code}"}, args...)
	code, err := exec.CommandContext(ctx, curl, args...).Output()
	if err != nil {
		t.Fatalf("curl %v: %v", args, err)
	}
	n, err := strconv.Atoi(string(code))
	if err != nil {
		t.Fatalf("curl status %q", code)
	}
	body, _ := os.ReadFile(out)
	return body, n
}

func TestCurlFetchesPackagesAndPackage(t *testing.T) {
	curl := lookCurl(t)
	dir, files := newPkgDir(t)
	h, err := NewHandler(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.(*Handler).Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.StripPrefix("/binpkgs", h))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	base := srv.URL + "/binpkgs"

	idx, code := runCurl(t, curl, base+"/Packages")
	if code != 200 {
		t.Fatalf("Packages: %d", code)
	}
	direct := do(h, "GET", "/Packages").Body.Bytes()
	if !bytes.Equal(idx, direct) {
		t.Errorf("curl Packages differs from the handler's")
	}
	// Portage fetches Packages.gz first; curl --compressed is not used: the
	// file itself is gzip.
	gz, code := runCurl(t, curl, base+"/Packages.gz")
	if code != 200 || !bytes.Equal(gunzip(t, gz), idx) {
		t.Errorf("Packages.gz: %d", code)
	}
	// Every package listed is fetched by its PATH, byte for byte.
	ix := parseIndex(t, idx)
	for _, e := range ix.Packages {
		body, code := runCurl(t, curl, base+"/"+e["PATH"])
		if code != 200 || !bytes.Equal(body, files[e["PATH"]]) {
			t.Errorf("%s: %d, %d bytes", e["PATH"], code, len(body))
		}
		sum := sha1.Sum(body)
		if hex.EncodeToString(sum[:]) != e["SHA1"] || strconv.Itoa(len(body)) != e["SIZE"] {
			t.Errorf("%s: SHA1/SIZE disagree with the index", e["PATH"])
		}
	}
	// Resume as Portage's RESUMECOMMAND would: curl -C - on a partial file.
	p := testPkgs[2].path
	part := filepath.Join(t.TempDir(), "part")
	os.WriteFile(part, files[p][:1000], 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, curl, "-sS", "--noproxy", "*", "-C", "-", "-o", part, base+"/"+p).CombinedOutput(); err != nil {
		t.Fatalf("curl -C -: %v %s", err, out)
	}
	if got, _ := os.ReadFile(part); !bytes.Equal(got, files[p]) {
		t.Error("resumed download differs")
	}
	// If-Modified-Since as Portage sends it for the index: curl -z.
	_, code = runCurl(t, curl, "-z", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat), base+"/Packages")
	if code != 304 {
		t.Errorf("curl -z: %d, want 304", code)
	}
}

func TestBackgroundIndexAndClose(t *testing.T) {
	dir, _ := newPkgDir(t)
	// Closed at once: the background work stops, nothing leaks or panics.
	h0, err := NewHandler(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := h0.(*Handler).Close(); err != nil {
		t.Fatal(err)
	}
	// Left alone, the index is ready before any request.
	h, err := newHandler(dir, nil, time.Hour, true)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	h.warm.Wait()
	h.ix.mu.Lock()
	ready := h.ix.gen != nil && len(h.ix.entries) == len(testPkgs)
	h.ix.mu.Unlock()
	if !ready {
		t.Fatal("index not prepared in the background")
	}
	if w := do(h, "GET", "/Packages"); w.Code != 200 || len(parseIndex(t, w.Body.Bytes()).Packages) != len(testPkgs) {
		t.Fatalf("Packages after background preparation: %d\n%s", w.Code, w.Body)
	}
	if _, err := NewHandler(filepath.Join(dir, "missing"), nil); err == nil {
		t.Error("a missing directory accepted")
	}
	if _, err := NewHandler(filepath.Join(dir, "sys-apps", "notes.txt"), nil); err == nil {
		t.Error("a file accepted as PKGDIR")
	}
}

// Many clients while packages come and go: every answer is a complete,
// consistent index, and package downloads are whole (run with -race).
func TestConcurrentClients(t *testing.T) {
	dir, files := newPkgDir(t)
	h := newTestHandler(t, dir)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	var churn [3][]byte
	for i := range churn {
		churn[i] = xpakPackage(t, meta{"CATEGORY": "app-misc", "PF": "churn-" + strconv.Itoa(i), "SLOT": "0"})
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			// (No t.Fatal off the test goroutine: errors only skip a round.)
			p := filepath.Join(dir, "app-misc", "churn-"+strconv.Itoa(i%3)+".tbz2")
			os.WriteFile(p, churn[i%3], 0o644)
			if i%2 == 1 {
				os.Remove(p)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	errs := make(chan string, 64)
	var wg sync.WaitGroup
	for c := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 15 {
				path := "/Packages"
				switch (c + i) % 3 {
				case 1:
					path = "/Packages.gz"
				case 2:
					path = "/" + testPkgs[i%len(testPkgs)].path
				}
				resp, err := http.Get(srv.URL + path)
				if err != nil {
					errs <- err.Error()
					return
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					errs <- path + ": " + resp.Status
					return
				}
				switch {
				case path == "/Packages.gz":
					zr, err := gzip.NewReader(bytes.NewReader(body))
					if err != nil {
						errs <- "Packages.gz: " + err.Error()
						return
					}
					body, err = io.ReadAll(zr)
					if err != nil {
						errs <- "Packages.gz: " + err.Error()
						return
					}
					fallthrough
				case path == "/Packages":
					ix, err := gentoo.ReadPackages(bytes.NewReader(body))
					if err != nil || ix.Header["PACKAGES"] != strconv.Itoa(len(ix.Packages)) || len(ix.Packages) < len(testPkgs) {
						errs <- path + ": inconsistent index"
						return
					}
				default:
					if !bytes.Equal(body, files[path[1:]]) {
						errs <- path + ": wrong bytes"
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-done
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
