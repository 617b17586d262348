package distcache

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestResumeSameSource: the upstream body breaks half way; the download
// continues with a Range request at the current offset and the result is
// complete and correct.
func TestResumeSameSource(t *testing.T) {
	up := newUpstream(t)
	data := testData(150<<10, 10)
	mod := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	var n atomic.Int32
	up.handle("/distfiles/r.tar", func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.Header().Set("Last-Modified", mod.Format(http.TimeFormat))
			breakAfter(w, data, 70000)
			return
		}
		serveBytes(data, mod)(w, r)
	})
	c := newTestCache(t, "", Options{Mirrors: []string{up.url("")}})
	b, o, err := c.Distfile(testCtx(t), "r.tar")
	if err != nil || o != Miss {
		t.Fatalf("Distfile: %v %v", o, err)
	}
	defer b.Close()
	got, err := readAll(t, b, 0)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
	h := up.headers("/distfiles/r.tar")
	if len(h) != 2 {
		t.Fatalf("%d requests, want 2", len(h))
	}
	if rg := h[1].Get("Range"); rg != "bytes=70000-" {
		t.Fatalf("resume request Range = %q", rg)
	}
	if ir := h[1].Get("If-Range"); ir != mod.Format(http.TimeFormat) {
		t.Errorf("resume request If-Range = %q", ir)
	}
	if !bytes.Equal(storedBytes(t, c, "distfiles/r.tar"), data) {
		t.Fatal("stored bytes differ")
	}
	if !b.ModTime().Equal(mod) {
		t.Errorf("ModTime = %v, want %v", b.ModTime(), mod)
	}
	if got := storedModTime(t, c, "distfiles/r.tar"); !got.Equal(mod) {
		t.Errorf("file mtime = %v, want upstream Last-Modified", got)
	}
}

// TestResumeNextSource: the first mirror breaks and then fails; the
// download resumes from the second mirror with a Range request.
func TestResumeNextSource(t *testing.T) {
	a, b := newUpstream(t), newUpstream(t)
	data := testData(120<<10, 11)
	var n atomic.Int32
	a.handle("/distfiles/s.tar", func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			breakAfter(w, data, 50000)
			return
		}
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
	})
	b.handle("/distfiles/s.tar", serveBytes(data, time.Now()))
	c := newTestCache(t, "", Options{Mirrors: []string{a.url(""), b.url("")}})
	body, _, err := c.Distfile(testCtx(t), "s.tar")
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	got, err := readAll(t, body, 0)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
	hb := b.headers("/distfiles/s.tar")
	if len(hb) != 1 || hb[0].Get("Range") != "bytes=50000-" {
		t.Fatalf("second mirror requests %v", hb)
	}
}

// TestResumeRangeIgnored: on resume the source ignores Range and sends
// the whole file again; the download checks the part it has and goes on,
// and a reader already streaming is not disturbed.
func TestResumeRangeIgnored(t *testing.T) {
	up := newUpstream(t)
	data := testData(100<<10, 12)
	var n atomic.Int32
	up.handle("/f", func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			breakAfter(w, data, 40000)
			return
		}
		w.Header().Set("Content-Length", itoa(len(data)))
		w.Write(data) // 200, Range ignored
	})
	c := newTestCache(t, "", Options{})
	body, _, err := c.Get(testCtx(t), Object{Key: "urls/h/f", Sources: []string{up.url("/f")}})
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	got, err := readAll(t, body, 0)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
	if n.Load() != 2 {
		t.Fatalf("%d requests", n.Load())
	}
}

// TestResumeBadContentRange: a source answering the wrong range is not
// trusted; the next source completes the file.
func TestResumeBadContentRange(t *testing.T) {
	a, b := newUpstream(t), newUpstream(t)
	data := testData(80<<10, 13)
	var n atomic.Int32
	a.handle("/distfiles/c.tar", func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			breakAfter(w, data, 30000)
			return
		}
		w.Header().Set("Content-Range", "bytes 0-"+itoa(len(data)-1)+"/"+itoa(len(data)))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(data)
	})
	b.handle("/distfiles/c.tar", serveBytes(data, time.Now()))
	c := newTestCache(t, "", Options{Mirrors: []string{a.url(""), b.url("")}})
	body, _, err := c.Distfile(testCtx(t), "c.tar")
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	if err := body.Wait(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(storedBytes(t, c, "distfiles/c.tar"), data) {
		t.Fatal("stored bytes differ")
	}
	if hb := b.headers("/distfiles/c.tar"); len(hb) != 1 || hb[0].Get("Range") != "bytes=30000-" {
		t.Fatalf("second mirror requests %v", hb)
	}
}

// TestUpstreamLiesAboutLength: every answer announces more bytes than it
// sends. Retries are bounded, the reader sees an error (never a clean
// short end), nothing is kept, and a later Get with a healthy upstream
// succeeds.
func TestUpstreamLiesAboutLength(t *testing.T) {
	up := newUpstream(t)
	data := testData(60<<10, 14)
	healthy := atomic.Bool{}
	up.handle("/distfiles/l.tar", func(w http.ResponseWriter, r *http.Request) {
		if healthy.Load() {
			serveBytes(data, time.Now())(w, r)
			return
		}
		// Announce the full length, send a little more each time, break.
		start := 0
		if rg := r.Header.Get("Range"); rg != "" {
			start, _ = atoiPrefix(strings.TrimPrefix(rg, "bytes="))
			w.Header().Set("Content-Range", "bytes "+itoa(start)+"-"+itoa(len(data)-1)+"/"+itoa(len(data)))
			w.Header().Set("Content-Length", itoa(len(data)-start))
			w.WriteHeader(http.StatusPartialContent)
		} else {
			w.Header().Set("Content-Length", itoa(len(data)))
			w.WriteHeader(http.StatusOK)
		}
		w.Write(data[start : start+1000])
		w.(http.Flusher).Flush()
		if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
			c.Close()
		}
	})
	c := newTestCache(t, "", Options{Mirrors: []string{up.url("")}})
	body, _, err := c.Distfile(testCtx(t), "l.tar")
	if err != nil {
		t.Fatal(err)
	}
	got, rerr := readAll(t, body, 0)
	body.Close()
	if rerr == nil {
		t.Fatalf("reader got a clean end after %d bytes of a failed download", len(got))
	}
	if !errors.Is(rerr, ErrUpstream) {
		t.Errorf("reader error %v, want ErrUpstream", rerr)
	}
	if werr := body.Wait(testCtx(t)); !errors.Is(werr, ErrUpstream) {
		t.Errorf("Wait = %v", werr)
	}
	if n := up.requests("/distfiles/l.tar"); n != maxTriesPerSource {
		t.Errorf("%d requests, want %d (bounded retries)", n, maxTriesPerSource)
	}
	if storedBytes(t, c, "distfiles/l.tar") != nil {
		t.Fatal("a failed download was kept")
	}
	partialEmpty(t, c)

	healthy.Store(true)
	body, o, err := c.Distfile(testCtx(t), "l.tar")
	if err != nil || o != Miss {
		t.Fatalf("retry: %v %v", o, err)
	}
	defer body.Close()
	if got, err := readAll(t, body, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("retry read: %v", err)
	}
}

func atoiPrefix(s string) (int, bool) {
	n, i := 0, 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		n = n*10 + int(s[i]-'0')
		i++
	}
	return n, i > 0
}

// TestUpstreamSendsTooMuch: a body longer than its Content-Length (a lie
// the client cannot see with HTTP/1.1 framing, so simulated with a size
// from the Manifest) is refused.
func TestUpstreamSendsTooMuch(t *testing.T) {
	up := newUpstream(t)
	data := testData(20000, 15)
	up.handle("/distfiles/m.tar", func(w http.ResponseWriter, r *http.Request) {
		w.(http.Flusher).Flush() // chunked: no Content-Length
		w.Write(data)
	})
	exp := distOf("m.tar", data[:10000])
	c := newTestCache(t, "", Options{Mirrors: []string{up.url("")}, Verifier: mapVerifier{"m.tar": exp}})
	body, _, err := c.Distfile(testCtx(t), "m.tar")
	if err == nil {
		defer body.Close()
		err = body.Wait(testCtx(t))
	}
	if !errors.Is(err, ErrUpstream) && !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v", err)
	}
	if storedBytes(t, c, "distfiles/m.tar") != nil {
		t.Fatal("oversized download kept")
	}
}

// TestUnknownLength: an upstream without Content-Length; Size is -1 until
// the end, then the real length.
func TestUnknownLength(t *testing.T) {
	up := newUpstream(t)
	data := testData(50000, 16)
	up.handle("/f", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/x-test")
		w.(http.Flusher).Flush()
		w.Write(data)
	})
	c := newTestCache(t, "", Options{})
	body, _, err := c.Get(testCtx(t), Object{Key: "urls/h/f", Sources: []string{up.url("/f")}})
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	if got, err := readAll(t, body, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read: %v", err)
	}
	if err := body.Wait(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if body.Size() != int64(len(data)) || body.ContentType() != "text/x-test" {
		t.Fatalf("Size %d ContentType %q", body.Size(), body.ContentType())
	}
	// The content type is kept for hits.
	hit, o, err := c.Get(testCtx(t), Object{Key: "urls/h/f", Sources: []string{up.url("/f")}})
	if err != nil || o != Hit {
		t.Fatalf("hit: %v %v", o, err)
	}
	defer hit.Close()
	if hit.ContentType() != "text/x-test" || hit.Size() != int64(len(data)) {
		t.Fatalf("hit ContentType %q Size %d", hit.ContentType(), hit.Size())
	}
}

// TestEmptyAndRedirected: an empty file is cached and served; a mirror
// that redirects (as distfiles.gentoo.org's CDN may) is followed, and a
// resume keeps working through the redirect.
func TestEmptyAndRedirected(t *testing.T) {
	up := newUpstream(t)
	up.handle("/distfiles/empty.tar", serveBytes(nil, time.Now()))
	data := testData(50000, 17)
	var n atomic.Int32
	up.handle("/distfiles/moved.tar", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/real/moved.tar", http.StatusFound)
	})
	up.handle("/real/moved.tar", func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			breakAfter(w, data, 20000)
			return
		}
		serveBytes(data, time.Now())(w, r)
	})
	c := newTestCache(t, "", Options{Mirrors: []string{up.url("")}})
	b, _, err := c.Distfile(testCtx(t), "empty.tar")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := readAll(t, b, 0); err != nil || len(got) != 0 || b.Size() != 0 {
		t.Fatalf("empty: %d bytes, size %d, %v", len(got), b.Size(), err)
	}
	if err := b.Wait(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if fi, err := c.store.Stat("distfiles/empty.tar"); err != nil || fi.Size() != 0 {
		t.Fatalf("empty file not cached: %v", err)
	}
	b, _, err = c.Distfile(testCtx(t), "moved.tar")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got, err := readAll(t, b, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("redirected: %d bytes, %v", len(got), err)
	}
	if h := up.headers("/real/moved.tar"); len(h) != 2 || h[1].Get("Range") != "bytes=20000-" {
		t.Fatalf("resume through the redirect: %v", h)
	}
}
