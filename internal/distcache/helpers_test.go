package distcache

import (
	"bytes"
	"context"
	"crypto/sha512"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/crypto/blake2b"

	"github.com/lanmirror/lanmirror/internal/gentoo"
	"github.com/lanmirror/lanmirror/internal/objstore"
)

// upstream is a test HTTP server whose routes the test controls; it
// counts requests per path and keeps their headers.
type upstream struct {
	t   *testing.T
	srv *httptest.Server

	mu     sync.Mutex
	routes map[string]http.HandlerFunc
	count  map[string]int
	hdrs   map[string][]http.Header
	total  atomic.Int64
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{t: t, routes: map[string]http.HandlerFunc{}, count: map[string]int{}, hdrs: map[string][]http.Header{}}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.total.Add(1)
		u.mu.Lock()
		u.count[r.URL.Path]++
		u.hdrs[r.URL.Path] = append(u.hdrs[r.URL.Path], r.Header.Clone())
		h := u.routes[r.URL.Path]
		u.mu.Unlock()
		if h == nil {
			http.NotFound(w, r)
			return
		}
		h(w, r)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) handle(path string, h http.HandlerFunc) {
	u.mu.Lock()
	u.routes[path] = h
	u.mu.Unlock()
}

func (u *upstream) requests(path string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.count[path]
}

func (u *upstream) headers(path string) []http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]http.Header(nil), u.hdrs[path]...)
}

func (u *upstream) url(path string) string { return u.srv.URL + path }

// serveBytes answers like a normal static server (Range, conditional).
func serveBytes(data []byte, mod time.Time) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", mod, bytes.NewReader(data))
	}
}

// throttled sends data (200, Content-Length) in pieces with pauses.
func throttled(data []byte, piece int, pause time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", itoa(len(data)))
		w.WriteHeader(http.StatusOK)
		for off := 0; off < len(data); off += piece {
			end := min(off+piece, len(data))
			if _, err := w.Write(data[off:end]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			time.Sleep(pause)
		}
	}
}

// breakAfter announces len(data) bytes, sends n of them and drops the
// connection.
func breakAfter(w http.ResponseWriter, data []byte, n int) {
	w.Header().Set("Content-Length", itoa(len(data)))
	w.WriteHeader(http.StatusOK)
	w.Write(data[:n])
	w.(http.Flusher).Flush()
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("no hijacker")
	}
	c, _, err := hj.Hijack()
	if err == nil {
		c.Close()
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func testData(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

func distOf(name string, data []byte) gentoo.Dist {
	b2 := blake2b.Sum512(data)
	s5 := sha512.Sum512(data)
	return gentoo.Dist{Name: name, Size: int64(len(data)), BLAKE2B: b2[:], SHA512: s5[:]}
}

type mapVerifier map[string]gentoo.Dist

func (m mapVerifier) Lookup(name string) (gentoo.Dist, bool) { d, ok := m[name]; return d, ok }

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// testRemote, when set, gives the remote backend newTestCache's caches
// use (TestCacheSuiteOnS3 sets it to run this package's cache tests
// against S3); nil: the local disk.
var testRemote func(t *testing.T) objstore.Backend

// newTestCache opens a store in dir (a fresh temp dir when "") and a
// cache on it; both are closed at the end of the test.
func newTestCache(t *testing.T, dir string, o Options) *Cache {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	st, err := OpenStore(dir, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	o.Store = st
	if testRemote != nil && o.Remote == nil {
		o.Remote = testRemote(t)
	}
	if o.Log == nil {
		o.Log = testLogger(t)
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = 5 * time.Second
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		st.Close()
	})
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// readAll reads a Body from off to its end with a deadline.
func readAll(t *testing.T, b *Body, off int64) ([]byte, error) {
	t.Helper()
	r := b.NewReader(off)
	defer r.Close()
	type res struct {
		data []byte
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		d, err := io.ReadAll(r)
		ch <- res{d, err}
	}()
	select {
	case x := <-ch:
		return x.data, x.err
	case <-time.After(20 * time.Second):
		r.Close()
		t.Fatal("reading the body timed out")
		return nil, nil
	}
}

// storedBytes returns the object's bytes from the store, or nil.
func storedBytes(t *testing.T, c *Cache, key string) []byte {
	t.Helper()
	if c.remote != nil {
		rc, err := c.remote.Open(context.Background(), key, 0)
		if err != nil {
			return nil
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	f, _, err := c.store.Open(key)
	if err != nil {
		return nil
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// storedModTime returns the stored object's modification time (zero when
// there is no object).
func storedModTime(t *testing.T, c *Cache, key string) time.Time {
	t.Helper()
	if c.remote != nil {
		in, err := c.remote.Stat(context.Background(), key)
		if err != nil {
			return time.Time{}
		}
		return in.ModTime
	}
	fi, err := c.store.Stat(key)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

func partialEmpty(t *testing.T, c *Cache) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(c.store.Dir(), filepath.FromSlash(c.store.partial)))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Errorf("%d leftovers in %s", len(ents), c.store.partial)
	}
}

// simulateKill drops a store as a killed process would: its lock goes
// away, nothing is cleaned up or saved.
func simulateKill(s *Store) {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.flushDone
		s.partialLock.Close()
		s.dist.Close()
		s.root.Close()
	})
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}
