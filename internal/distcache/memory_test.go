package distcache

import (
	"crypto/sha256"
	"io"
	"net/http"
	"runtime"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/lanmirror/lanmirror/internal/metrics"
)

// TestBoundedMemory: a download streams through fixed buffers: fetching
// and reading a 24 MiB file allocates far less than the file's size.
func TestBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 24 MiB")
	}
	const size = 24 << 20
	data := testData(size, 40)
	up := newUpstream(t)
	up.handle("/distfiles/huge.tar", serveBytes(data, time.Now()))
	c := newTestCache(t, "", Options{Mirrors: []string{up.url("")}})
	want := sha256.Sum256(data)

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b, _, err := c.Distfile(testCtx(t), "huge.tar")
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	r := b.NewReader(0)
	buf := make([]byte, 32<<10)
	n, err := io.CopyBuffer(struct{ io.Writer }{h}, struct{ io.Reader }{r}, buf)
	r.Close()
	b.Close()
	if err != nil || n != size {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	runtime.ReadMemStats(&after)
	if [32]byte(h.Sum(nil)) != want {
		t.Fatal("bytes differ")
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %d KiB for a %d KiB download", alloc>>10, size>>10)
	// The upstream test server is in this process too; both sides
	// together must stay well below the file size.
	if alloc > size/4 {
		t.Fatalf("allocated %d bytes for a %d-byte download: not streaming", alloc, size)
	}
}

func gaugeValue(t *testing.T) float64 {
	var m dto.Metric
	if err := metrics.ActiveDownloads.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

// TestActiveDownloadsGauge: the gauge counts a download while it runs.
func TestActiveDownloadsGauge(t *testing.T) {
	up := newUpstream(t)
	release := make(chan struct{})
	data := testData(1000, 41)
	up.handle("/f", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", itoa(len(data)))
		w.Write(data[:10])
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Write(data[10:])
	})
	c := newTestCache(t, "", Options{})
	base := gaugeValue(t)
	b, _, err := c.Get(testCtx(t), Object{Key: "urls/h/f", Sources: []string{up.url("/f")}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if g := gaugeValue(t); g < base+1 {
		t.Errorf("gauge %v during the download, base %v", g, base)
	}
	close(release)
	if err := b.Wait(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if g := gaugeValue(t); g != base {
		t.Errorf("gauge %v after the download, want %v", g, base)
	}
}
