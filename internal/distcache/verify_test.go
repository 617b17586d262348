package distcache

import (
	"bytes"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/metrics"
)

// TestCorruptMirrorThenGood: the first mirror has a corrupt copy (right
// size, wrong bytes); it is not kept, the second mirror's good copy is,
// and no reader receives the corrupt file as complete.
func TestCorruptMirrorThenGood(t *testing.T) {
	a, b := newUpstream(t), newUpstream(t)
	good := testData(90<<10, 20)
	bad := append([]byte(nil), good...)
	bad[len(bad)/2] ^= 0xff
	a.handle("/distfiles/v.tar", throttled(bad, 8<<10, 2*time.Millisecond))
	b.handle("/distfiles/v.tar", throttled(good, 8<<10, 2*time.Millisecond))
	c := newTestCache(t, "", Options{Mirrors: []string{a.url(""), b.url("")},
		Verifier: mapVerifier{"v.tar": distOf("v.tar", good)}})
	body, _, err := c.Distfile(testCtx(t), "v.tar")
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	got, rerr := readAll(t, body, 0)
	if rerr == nil && !bytes.Equal(got, good) {
		t.Fatal("a reader received a complete-looking file that is not the good one")
	}
	if err := body.Wait(testCtx(t)); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if !bytes.Equal(storedBytes(t, c, "distfiles/v.tar"), good) {
		t.Fatal("stored file is not the good copy")
	}
	// A client arriving now gets the good file.
	hit, o, err := c.Distfile(testCtx(t), "v.tar")
	if err != nil || o != Hit {
		t.Fatalf("after: %v %v", o, err)
	}
	defer hit.Close()
	if got, err := readAll(t, hit, 0); err != nil || !bytes.Equal(got, good) {
		t.Fatal("hit is not the good copy")
	}
}

// TestCorruptEverywhere: every mirror has a corrupt copy: ErrCorrupt with
// the reasons, the reader fails before the last byte, nothing is kept.
func TestCorruptEverywhere(t *testing.T) {
	a, b := newUpstream(t), newUpstream(t)
	good := testData(30000, 21)
	bad := append([]byte(nil), good...)
	bad[100] ^= 1
	a.handle("/distfiles/w.tar", serveBytes(bad, time.Now()))
	b.handle("/distfiles/w.tar", serveBytes(bad, time.Now()))
	c := newTestCache(t, "", Options{Mirrors: []string{a.url(""), b.url("")},
		Verifier: mapVerifier{"w.tar": distOf("w.tar", good)}})
	mismatches := counterValue(metrics.UpstreamFetches.WithLabelValues("digest_mismatch"))
	body, _, err := c.Distfile(testCtx(t), "w.tar")
	if err == nil {
		got, rerr := readAll(t, body, 0)
		if rerr == nil {
			t.Fatalf("reader got a clean end (%d bytes) of a corrupt download", len(got))
		}
		if len(got) >= len(good) {
			t.Fatalf("reader got all %d bytes of a corrupt download", len(got))
		}
		err = body.Wait(testCtx(t))
		body.Close()
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want ErrCorrupt", err)
	}
	for _, want := range []string{a.url(""), b.url(""), "BLAKE2B"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if storedBytes(t, c, "distfiles/w.tar") != nil {
		t.Fatal("corrupt file kept")
	}
	if got := counterValue(metrics.UpstreamFetches.WithLabelValues("digest_mismatch")) - mismatches; got != 1 {
		t.Errorf("digest_mismatch metric += %v, want 1", got)
	}
	partialEmpty(t, c)
}

// TestSizeAgainstManifest: a mirror announcing the wrong size is skipped
// without downloading; the error names the sizes.
func TestSizeAgainstManifest(t *testing.T) {
	a := newUpstream(t)
	a.handle("/distfiles/z.tar", serveBytes(testData(100, 22), time.Now()))
	c := newTestCache(t, "", Options{Mirrors: []string{a.url("")},
		Verifier: mapVerifier{"z.tar": distOf("z.tar", testData(120, 22))}})
	_, _, err := c.Distfile(testCtx(t), "z.tar")
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "size 100 != Manifest 120") {
		t.Fatalf("err = %v", err)
	}
}

// TestWrongSizeCachedRefetched: a cached file whose size contradicts the
// Manifest is fetched again.
func TestWrongSizeCachedRefetched(t *testing.T) {
	a := newUpstream(t)
	good := testData(5000, 23)
	a.handle("/distfiles/q.tar", serveBytes(good, time.Now()))
	c := newTestCache(t, "", Options{Mirrors: []string{a.url("")}, Verifier: mapVerifier{"q.tar": distOf("q.tar", good)}})
	src := filepath.Join(t.TempDir(), "old")
	os.WriteFile(src, []byte("old and short"), 0o644)
	if err := c.store.Add("distfiles/q.tar", src, false); err != nil {
		t.Fatal(err)
	}
	body, o, err := c.Distfile(testCtx(t), "q.tar")
	if err != nil || o != Miss {
		t.Fatalf("%v %v", o, err)
	}
	defer body.Close()
	if got, err := readAll(t, body, 0); err != nil || !bytes.Equal(got, good) {
		t.Fatalf("read: %v", err)
	}
}

// TestKill9Leftovers: a download interrupted by a crash leaves a file in
// .partial; after reopening, nothing partial is served and the next
// request fetches the file correctly.
func TestKill9Leftovers(t *testing.T) {
	dir := t.TempDir()
	data := testData(40000, 24)
	up := newUpstream(t)
	up.handle("/distfiles/k.tar", serveBytes(data, time.Now()))
	// The crashed process: a store with a half-written download.
	st, err := OpenStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, _, err := st.createTemp()
	if err != nil {
		t.Fatal(err)
	}
	f.Write(data[:20000])
	f.Close()
	simulateKill(st) // no commit, no Close of the store: as after kill -9

	c := newTestCache(t, dir, Options{Mirrors: []string{up.url("")}})
	partialEmpty(t, c)
	if _, err := c.store.Stat("distfiles/k.tar"); err == nil {
		t.Fatal("partial download visible as an object")
	}
	body, o, err := c.Distfile(testCtx(t), "k.tar")
	if err != nil || o != Miss {
		t.Fatalf("%v %v", o, err)
	}
	defer body.Close()
	if got, err := readAll(t, body, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read: %v", err)
	}
}

// TestVolatileRevalidation: a volatile object is served from the cache
// while fresh, revalidated with a conditional request after (304 keeps
// the copy), replaced when upstream changed, and served stale when
// upstream fails.
func TestVolatileRevalidation(t *testing.T) {
	up := newUpstream(t)
	v1 := []byte("Packages v1\n")
	v2 := []byte("Packages v2, longer\n")
	mod := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	cur, etag, fail := v1, `"v1"`, false
	var mu = make(chan struct{}, 1)
	mu <- struct{}{}
	up.handle("/Packages", func(w http.ResponseWriter, r *http.Request) {
		<-mu
		data, tag, f := cur, etag, fail
		mu <- struct{}{}
		if f {
			http.Error(w, "broken", http.StatusInternalServerError)
			return
		}
		w.Header().Set("ETag", tag)
		serveBytes(data, mod)(w, r)
	})
	fresh := time.Minute
	c := newTestCache(t, "", Options{Fresh: fresh})
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	c.now = func() time.Time { return time.Unix(0, clock.Load()) }
	later := func() { clock.Add(int64(fresh + time.Second)) }
	obj := Object{Key: "binhost/Packages", Sources: []string{up.url("/Packages")}, Volatile: true}
	get := func(want Outcome, wantData []byte) {
		t.Helper()
		b, o, err := c.Get(testCtx(t), obj)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		defer b.Close()
		got, err := readAll(t, b, 0)
		if err != nil || !bytes.Equal(got, wantData) {
			t.Fatalf("got %q %v, want %q", got, err, wantData)
		}
		if err := b.Wait(testCtx(t)); err != nil {
			t.Fatalf("Wait: %v", err)
		}
		if o != want {
			t.Fatalf("outcome %s, want %s", o, want)
		}
	}
	get(Miss, v1)
	get(Hit, v1)
	if n := up.requests("/Packages"); n != 1 {
		t.Fatalf("%d requests while fresh", n)
	}
	later()
	get(Revalidated, v1)
	h := up.headers("/Packages")
	if len(h) != 2 || h[1].Get("If-None-Match") != `"v1"` || h[1].Get("If-Modified-Since") != mod.Format(http.TimeFormat) {
		t.Fatalf("revalidation request headers: %v", h[len(h)-1])
	}
	get(Hit, v1) // fresh again after the 304
	if n := up.requests("/Packages"); n != 2 {
		t.Fatalf("%d requests", n)
	}

	<-mu
	cur, etag = v2, `"v2"`
	mu <- struct{}{}
	later()
	get(Miss, v2)

	<-mu
	fail = true
	mu <- struct{}{}
	later()
	get(Hit, v2) // stale copy served
}

// TestMirrorLayouts: each mirror's layout.conf is read once; files are
// fetched from the path its layout gives; 404 fails over to the next
// mirror, then to the origins; a name nowhere is ErrNotFound.
func TestMirrorLayouts(t *testing.T) {
	hashed, flat := newUpstream(t), newUpstream(t)
	which := testData(3000, 30)
	psmisc := testData(4000, 31)
	origin := testData(500, 32)
	hashed.handle("/distfiles/layout.conf", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("[structure]\n0=filename-hash BLAKE2B 8\n"))
	})
	hashed.handle("/distfiles/80/which-2.23.tar.gz", serveBytes(which, time.Now()))
	flat.handle("/distfiles/psmisc-23.7.tar.xz", serveBytes(psmisc, time.Now())) // no layout.conf: flat
	orig := newUpstream(t)
	orig.handle("/releases/only-origin.tar", serveBytes(origin, time.Now()))

	c := newTestCache(t, "", Options{Mirrors: []string{hashed.url("/"), flat.url("")}})
	for name, want := range map[string][]byte{"which-2.23.tar.gz": which, "psmisc-23.7.tar.xz": psmisc} {
		b, _, err := c.Distfile(testCtx(t), name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := readAll(t, b, 0)
		b.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if hashed.requests("/distfiles/28/psmisc-23.7.tar.xz") != 1 {
		t.Error("hashed mirror not asked at its hashed path first")
	}
	b, _, err := c.Distfile(testCtx(t), "only-origin.tar", orig.url("/releases/only-origin.tar"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := readAll(t, b, 0); err != nil || !bytes.Equal(got, origin) {
		t.Fatalf("origin: %v", err)
	}
	b.Close()
	_, _, err = c.Distfile(testCtx(t), "nowhere-1.0.tar.gz")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing name: %v", err)
	}
	if !strings.Contains(err.Error(), hashed.url("/distfiles/")) || !strings.Contains(err.Error(), "404") {
		t.Errorf("error does not say what failed: %v", err)
	}
	if hashed.requests("/distfiles/layout.conf") != 1 || flat.requests("/distfiles/layout.conf") != 1 {
		t.Errorf("layout.conf requests: %d, %d; want 1 each", hashed.requests("/distfiles/layout.conf"), flat.requests("/distfiles/layout.conf"))
	}
	for _, bad := range []string{"../etc/passwd", "a/b", "", ".."} {
		if _, _, err := c.Distfile(testCtx(t), bad); !errors.Is(err, ErrBadName) {
			t.Errorf("Distfile(%q) = %v, want ErrBadName", bad, err)
		}
	}
}

// TestDeadMirror: a mirror that refuses connections is skipped.
func TestDeadMirror(t *testing.T) {
	dead := newUpstream(t)
	deadURL := dead.url("")
	dead.srv.Close()
	good := newUpstream(t)
	data := testData(1000, 33)
	good.handle("/distfiles/d.tar", serveBytes(data, time.Now()))
	c := newTestCache(t, "", Options{Mirrors: []string{deadURL, good.url("")}})
	b, _, err := c.Distfile(testCtx(t), "d.tar")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got, err := readAll(t, b, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatal(err)
	}
	// All sources down: ErrUpstream.
	c2 := newTestCache(t, "", Options{Mirrors: []string{deadURL}})
	if _, _, err := c2.Distfile(testCtx(t), "d.tar"); !errors.Is(err, ErrUpstream) {
		t.Fatalf("err = %v, want ErrUpstream", err)
	}
}

// TestLocalStorageError: when the cache cannot write, the error says so
// (not "upstream failed") and no upstream is bothered.
func TestLocalStorageError(t *testing.T) {
	up := newUpstream(t)
	up.handle("/distfiles/s.tar", serveBytes(testData(100, 25), time.Now()))
	c := newTestCache(t, "", Options{Mirrors: []string{up.url("")}})
	if err := os.Remove(filepath.Join(c.store.Dir(), filepath.FromSlash(c.store.partial))); err != nil {
		t.Fatal(err)
	}
	_, _, err := c.Distfile(testCtx(t), "s.tar")
	if err == nil || errors.Is(err, ErrUpstream) || !strings.Contains(err.Error(), "cache storage") {
		t.Fatalf("err = %v", err)
	}
	if up.total.Load() != 0 {
		t.Fatalf("%d upstream requests", up.total.Load())
	}
}
