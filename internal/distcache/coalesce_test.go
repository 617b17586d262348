package distcache

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/metrics"
)

// TestOneDownloadManyClients: 20 concurrent clients of one uncached file
// cause exactly one upstream request, one Miss and 19 Joins, and all get
// identical, correct bytes.
func TestOneDownloadManyClients(t *testing.T) {
	up := newUpstream(t)
	data := testData(300<<10, 1)
	// The upstream sends a first piece, then waits until every client has
	// its Body (so all of them meet the download in progress), then the
	// rest in throttled pieces.
	release := make(chan struct{})
	up.handle("/distfiles/big.tar.gz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", itoa(len(data)))
		w.Write(data[:16<<10])
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		for off := 16 << 10; off < len(data); off += 16 << 10 {
			w.Write(data[off:min(off+16<<10, len(data))])
			w.(http.Flusher).Flush()
			time.Sleep(2 * time.Millisecond)
		}
	})
	up.handle("/distfiles/layout.conf", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("[structure]\n0=flat\n")) })
	c := newTestCache(t, "", Options{Mirrors: []string{up.url("")}})
	okBefore := counterValue(metrics.UpstreamFetches.WithLabelValues("ok"))

	const n = 20
	var wg sync.WaitGroup
	results := make([][]byte, n)
	outcomes := make([]Outcome, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var attached sync.WaitGroup
	attached.Add(n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			b, o, err := c.Distfile(testCtx(t), "big.tar.gz")
			attached.Done()
			if err != nil {
				errs[i] = err
				return
			}
			defer b.Close()
			outcomes[i] = o
			results[i], errs[i] = readAll(t, b, 0)
			if errs[i] == nil {
				errs[i] = b.Wait(testCtx(t))
			}
		}()
	}
	close(start)
	attached.Wait()
	close(release)
	wg.Wait()
	miss, join := 0, 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("client %d: %v", i, errs[i])
		}
		if !bytes.Equal(results[i], data) {
			t.Fatalf("client %d got %d bytes, not the upstream file", i, len(results[i]))
		}
		switch outcomes[i] {
		case Miss:
			miss++
		case Join:
			join++
		}
	}
	if got := up.requests("/distfiles/big.tar.gz"); got != 1 {
		t.Fatalf("%d upstream requests, want 1", got)
	}
	if miss != 1 || join != n-1 {
		t.Fatalf("outcomes %v: want 1 MISS and %d JOIN", outcomes, n-1)
	}
	if got := counterValue(metrics.UpstreamFetches.WithLabelValues("ok")) - okBefore; got != 1 {
		t.Errorf("upstream fetches ok += %v, want 1", got)
	}
	if !bytes.Equal(storedBytes(t, c, "distfiles/big.tar.gz"), data) {
		t.Fatal("stored object differs")
	}
	// Immutable: served again with no upstream request.
	b, o, err := c.Distfile(testCtx(t), "big.tar.gz")
	if err != nil || o != Hit {
		t.Fatalf("second Distfile: %v %v", o, err)
	}
	got, err := readAll(t, b, 1000)
	b.Close()
	if err != nil || !bytes.Equal(got, data[1000:]) {
		t.Fatalf("hit from offset: %v", err)
	}
	if up.requests("/distfiles/big.tar.gz") != 1 || up.requests("/distfiles/layout.conf") != 1 {
		t.Fatalf("requests after hit: file %d, layout %d", up.requests("/distfiles/big.tar.gz"), up.requests("/distfiles/layout.conf"))
	}
	partialEmpty(t, c)
}

// TestStreamsBeforeEnd: readers get bytes while the download is still
// running, a late joiner gets what is on disk at once, and the last byte
// is held back until the end.
func TestStreamsBeforeEnd(t *testing.T) {
	up := newUpstream(t)
	data := testData(200<<10, 2)
	half := len(data) / 2
	release := make(chan struct{})
	up.handle("/f", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", itoa(len(data)))
		w.Write(data[:half])
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Write(data[half:])
	})
	c := newTestCache(t, "", Options{})
	obj := Object{Key: "urls/host/f", Sources: []string{up.url("/f")}}
	b1, o, err := c.Get(testCtx(t), obj)
	if err != nil || o != Miss {
		t.Fatalf("Get: %v %v", o, err)
	}
	defer b1.Close()
	if b1.Size() != int64(len(data)) {
		t.Fatalf("Size = %d", b1.Size())
	}
	r1 := b1.NewReader(0)
	defer r1.Close()
	buf := make([]byte, half)
	if _, err := readFullTimeout(r1, buf); err != nil {
		t.Fatalf("first half before the end: %v", err)
	}
	// A late joiner reads the half on disk at once.
	b2, o, err := c.Get(testCtx(t), obj)
	if err != nil || o != Join {
		t.Fatalf("late Get: %v %v", o, err)
	}
	defer b2.Close()
	r2 := b2.NewReader(10)
	defer r2.Close()
	buf2 := make([]byte, half-10)
	if _, err := readFullTimeout(r2, buf2); err != nil || !bytes.Equal(buf2, data[10:half]) {
		t.Fatalf("late joiner: %v", err)
	}
	close(release)
	rest, err := readAll(t, b1, int64(half))
	if err != nil || !bytes.Equal(rest, data[half:]) {
		t.Fatalf("rest: %v", err)
	}
	if err := b2.Wait(testCtx(t)); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if up.requests("/f") != 1 {
		t.Fatalf("%d requests", up.requests("/f"))
	}
}

func readFullTimeout(r interface{ Read([]byte) (int, error) }, buf []byte) (int, error) {
	done := make(chan struct{})
	var n int
	var err error
	go func() {
		defer close(done)
		for n < len(buf) && err == nil {
			var k int
			k, err = r.Read(buf[n:])
			n += k
		}
	}()
	select {
	case <-done:
		return n, err
	case <-time.After(10 * time.Second):
		return n, errors.New("timed out")
	}
}

// TestHoldsBackLastByte: until the download is verified, a reader cannot
// read the final byte.
func TestHoldsBackLastByte(t *testing.T) {
	up := newUpstream(t)
	data := testData(5000, 3)
	release := make(chan struct{})
	up.handle("/f", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", itoa(len(data)))
		w.Write(data[:len(data)-1])
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Write(data[len(data)-1:])
	})
	c := newTestCache(t, "", Options{})
	b, _, err := c.Get(testCtx(t), Object{Key: "urls/h/f", Sources: []string{up.url("/f")}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	r := b.NewReader(0)
	defer r.Close()
	var progress atomic.Int64
	result := make(chan []byte, 1)
	go func() {
		var got []byte
		buf := make([]byte, 1000)
		for {
			n, err := r.Read(buf)
			got = append(got, buf[:n]...)
			progress.Add(int64(n))
			if err != nil {
				result <- got
				return
			}
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for progress.Load() < int64(len(data)-1) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // time to (wrongly) read the last byte
	if n := progress.Load(); n != int64(len(data)-1) {
		t.Fatalf("read %d bytes before the end, want %d (all but the last)", n, len(data)-1)
	}
	close(release)
	select {
	case got := <-result:
		if !bytes.Equal(got, data) {
			t.Fatalf("after the end: %d bytes, not the upstream file", len(got))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reader did not finish")
	}
}

// TestDownloadOutlivesClient: the client that started a download goes
// away; the download still completes and is kept.
func TestDownloadOutlivesClient(t *testing.T) {
	up := newUpstream(t)
	data := testData(100<<10, 4)
	up.handle("/distfiles/x.tar", throttled(data, 8<<10, 5*time.Millisecond))
	c := newTestCache(t, "", Options{Mirrors: []string{up.url("")}})
	ctx, cancel := context.WithCancel(context.Background())
	b, o, err := c.Distfile(ctx, "x.tar")
	if err != nil || o != Miss {
		t.Fatalf("Distfile: %v %v", o, err)
	}
	r := b.NewReader(0)
	r.Read(make([]byte, 10))
	r.Close()
	b.Close()
	cancel()
	deadline := time.Now().Add(10 * time.Second)
	for storedBytes(t, c, "distfiles/x.tar") == nil {
		if time.Now().After(deadline) {
			t.Fatal("download did not complete after its client left")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !bytes.Equal(storedBytes(t, c, "distfiles/x.tar"), data) {
		t.Fatal("stored bytes differ")
	}
}

// TestCloseStopsDownloads: Close ends downloads in progress; their readers
// fail and nothing is kept.
func TestCloseStopsDownloads(t *testing.T) {
	up := newUpstream(t)
	data := testData(100<<10, 5)
	up.handle("/f", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", itoa(len(data)))
		w.Write(data[:1000])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	dir := t.TempDir()
	st, err := OpenStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := New(Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := c.Get(testCtx(t), Object{Key: "urls/h/f", Sources: []string{up.url("/f")}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	done := make(chan struct{})
	go func() { c.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not stop the download")
	}
	if _, err := readAll(t, b, 0); err == nil {
		t.Fatal("reader of a stopped download saw a clean end")
	}
	if _, err := st.Stat("urls/h/f"); err == nil {
		t.Fatal("stopped download was kept")
	}
	if _, _, err := c.Get(testCtx(t), Object{Key: "urls/h/f", Sources: []string{up.url("/f")}}); err == nil {
		t.Fatal("Get after Close succeeded")
	}
}

// TestCloseAbortsWaitingRead: closing a reader from another goroutine
// ends a Read that waits for upstream bytes.
func TestCloseAbortsWaitingRead(t *testing.T) {
	up := newUpstream(t)
	data := testData(1000, 6)
	release := make(chan struct{})
	defer close(release)
	up.handle("/f", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", itoa(len(data)))
		w.Write(data[:10])
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	c := newTestCache(t, "", Options{})
	b, _, err := c.Get(testCtx(t), Object{Key: "urls/h/f", Sources: []string{up.url("/f")}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	r := b.NewReader(500)
	done := make(chan error, 1)
	go func() {
		_, err := r.Read(make([]byte, 100))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	r.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("aborted Read returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the waiting Read")
	}
}
