package httpd

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/lanmirror/lanmirror/internal/distcache"
)

// BenchmarkServeHit measures the handler cost of a cached 40 KiB distfile
// (the small-file case of bench/http.sh) without the network.
func BenchmarkServeHit(b *testing.B) {
	dir := b.TempDir()
	os.MkdirAll(filepath.Join(dir, "distfiles"), 0o755)
	os.WriteFile(filepath.Join(dir, "distfiles", "small.tar.gz"), testData(40<<10, 1), 0o644)
	store, err := distcache.OpenStore(dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	c, err := distcache.New(distcache.Options{Store: store})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	srv, err := New(Options{Cache: FromDistcache(c), AccessLog: io.Discard})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest("GET", "/distfiles/small.tar.gz", nil)
		r.RemoteAddr = "127.0.0.1:1234"
		w := &discardWriter{h: http.Header{}}
		srv.ServeHTTP(w, r)
		if w.code != 200 || w.n != 40<<10 {
			b.Fatalf("%d %d", w.code, w.n)
		}
	}
}

// discardWriter is a ResponseWriter that counts and drops the body.
type discardWriter struct {
	h    http.Header
	code int
	n    int
}

func (d *discardWriter) Header() http.Header { return d.h }
func (d *discardWriter) WriteHeader(c int) {
	if d.code == 0 {
		d.code = c
	}
}
func (d *discardWriter) Write(p []byte) (int, error) {
	if d.code == 0 {
		d.code = 200
	}
	d.n += len(p)
	return len(p), nil
}
