package distcache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestTaintSetExpiryAndBound: keys expire after the TTL; the oldest go
// when the set is full; re-adding refreshes a key.
func TestTaintSetExpiryAndBound(t *testing.T) {
	now := time.Unix(1000, 0)
	ts := newTaintSet(time.Hour, 3)
	ts.now = func() time.Time { return now }
	ts.add("a")
	now = now.Add(10 * time.Minute)
	ts.add("b")
	ts.add("c")
	if !ts.has("a") || !ts.has("b") || !ts.has("c") || ts.has("d") {
		t.Fatal("fresh keys not all remembered")
	}
	ts.add("d") // full: "a" (the oldest) goes
	if ts.has("a") || !ts.has("d") || ts.len() != 3 {
		t.Fatalf("bound: a=%v d=%v len=%d", ts.has("a"), ts.has("d"), ts.len())
	}
	now = now.Add(30 * time.Minute)
	ts.add("b") // refreshed: now the newest
	now = now.Add(35 * time.Minute)
	if ts.has("c") || ts.has("d") {
		t.Fatal("keys older than the TTL still tainted")
	}
	if !ts.has("b") {
		t.Fatal("a refreshed key expired with its first time")
	}
	now = now.Add(time.Hour)
	if ts.has("b") || ts.len() != 0 {
		t.Fatalf("expired keys remain: len=%d", ts.len())
	}
	for i := range 1000 {
		ts.add(fmt.Sprint(i % 5))
	}
	if ts.len() != 3 || len(ts.order) > 2*ts.max+16 {
		t.Fatalf("set not bounded: len=%d order=%d", ts.len(), len(ts.order))
	}
}

// TestETags: a stored object with a Manifest entry has the Manifest's
// tag, one without has its file identity (changing with a new file), a
// body following a download a tag of its own.
func TestETags(t *testing.T) {
	up := newUpstream(t)
	known, other := testData(20000, 1), testData(3000, 2)
	up.handle("/distfiles/k.tar", throttled(known, 4<<10, 5*time.Millisecond))
	up.handle("/distfiles/o.tar", serveBytes(other, time.Unix(1700000000, 0)))
	dk := distOf("k.tar", known)
	c := newTestCache(t, "", Options{Mirrors: []string{up.url("")}, Verifier: mapVerifier{"k.tar": dk}})

	b, o, err := c.Distfile(testCtx(t), "k.tar")
	if err != nil || o != Miss {
		t.Fatal(o, err)
	}
	// A body made while the download runs carries the download's tag; one
	// made after it was committed (a fast upstream on a loaded machine)
	// is the stored file with the Manifest's tag.
	if !strings.HasPrefix(b.ETag(), `"dl-`) && b.ETag() != manifestETag(&dk) {
		t.Fatalf("download body ETag %s", b.ETag())
	}
	if got, err := readAll(t, b, 0); err != nil || !bytes.Equal(got, known) {
		t.Fatal("download body", err)
	}
	if err := b.Wait(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	b.Close()
	waitInactive(t, c, "distfiles/k.tar")
	h, o, err := c.Distfile(testCtx(t), "k.tar")
	if err != nil || o != Hit {
		t.Fatal(o, err)
	}
	h.Close()
	if want := manifestETag(&dk); h.ETag() != want || !strings.HasPrefix(want, `"blake2b-`) {
		t.Fatalf("hit ETag %s, want %s", h.ETag(), want)
	}
	if h.Tainted() {
		t.Fatal("a clean download tainted its name")
	}

	b2, _, err := c.Distfile(testCtx(t), "o.tar")
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, b2, 0)
	if err := b2.Wait(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	b2.Close()
	waitInactive(t, c, "distfiles/o.tar")
	h2, o, err := c.Distfile(testCtx(t), "o.tar")
	if err != nil || o != Hit {
		t.Fatal(o, err)
	}
	h2.Close()
	// The download's own tag never equals the stored file's, unless the
	// body was already made from the stored file (committed first).
	if !strings.HasPrefix(h2.ETag(), `"f-`) || (strings.HasPrefix(b2.ETag(), `"dl-`) == (h2.ETag() == b2.ETag())) {
		t.Fatalf("stored ETag %s (download's %s)", h2.ETag(), b2.ETag())
	}
	// A new file under the same key (an import) has a new tag.
	src := t.TempDir() + "/o.tar"
	if err := writeFile(src, other); err != nil {
		t.Fatal(err)
	}
	if err := c.store.Add("distfiles/o.tar", src, false); err != nil {
		t.Fatal(err)
	}
	h3, _, err := c.Distfile(testCtx(t), "o.tar")
	if err != nil {
		t.Fatal(err)
	}
	h3.Close()
	if h3.ETag() == h2.ETag() {
		t.Fatalf("a replaced file kept the tag %s", h3.ETag())
	}
}

// TestCorruptCopyTaintsName: a corrupt copy of the right size streamed to
// a client and then discarded taints the name; the client's tag is none
// the good file will ever have.
func TestCorruptCopyTaintsName(t *testing.T) {
	a, b := newUpstream(t), newUpstream(t)
	good := testData(200<<10, 30)
	bad := append([]byte(nil), good...)
	for i := range 1000 {
		bad[i] ^= 0x55
	}
	a.handle("/distfiles/t.tar", throttled(bad, 16<<10, 2*time.Millisecond))
	b.handle("/distfiles/t.tar", throttled(good, 16<<10, 2*time.Millisecond))
	d := distOf("t.tar", good)
	c := newTestCache(t, "", Options{Mirrors: []string{a.url(""), b.url("")}, Verifier: mapVerifier{"t.tar": d}})
	body, _, err := c.Distfile(testCtx(t), "t.tar")
	if err != nil {
		t.Fatal(err)
	}
	first := body.ETag()
	got, rerr := readAll(t, body, 0)
	if rerr == nil {
		t.Fatalf("the reader of the corrupt copy ended cleanly with %d bytes", len(got))
	}
	if len(got) == 0 || !bytes.Equal(got[:min(len(got), 1000)], bad[:min(len(got), 1000)]) {
		t.Fatalf("test setup: the reader was expected to get the corrupt head first (%d bytes)", len(got))
	}
	if err := body.Wait(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	body.Close()
	if !body.Tainted() {
		t.Fatal("the body whose bytes were discarded does not report its name tainted")
	}
	h, o, err := c.Distfile(testCtx(t), "t.tar")
	if err != nil || o != Hit {
		t.Fatal(o, err)
	}
	defer h.Close()
	if !h.Tainted() || c.TaintedKeys() != 1 {
		t.Fatalf("hit after the corrupt copy: tainted=%v keys=%d", h.Tainted(), c.TaintedKeys())
	}
	if h.ETag() == first || h.ETag() != manifestETag(&d) {
		t.Fatalf("good copy tag %s, the corrupt stream's %s", h.ETag(), first)
	}
}

// waiter is an IndexWaiter for the tests.
type waiter struct {
	mapVerifier
	mu    sync.Mutex
	ready chan struct{}
	err   error
}

func (w *waiter) WaitIndexed(ctx context.Context) error {
	w.mu.Lock()
	err := w.err
	w.mu.Unlock()
	if err != nil {
		return err
	}
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestDistfileWaitsForTheIndex: Distfile waits for an index being built,
// then verifies against it; not ready in time, or failed: ErrIndexNotReady
// and nothing fetched.
func TestDistfileWaitsForTheIndex(t *testing.T) {
	up := newUpstream(t)
	good := testData(5000, 3)
	bad := append([]byte(nil), good...)
	bad[10] ^= 1
	up.handle("/distfiles/x.tar", serveBytes(bad, time.Now()))
	w := &waiter{mapVerifier: mapVerifier{"x.tar": distOf("x.tar", good)}, ready: make(chan struct{})}
	c := newTestCache(t, "", Options{Mirrors: []string{up.url("")}, Verifier: w, IndexWait: 200 * time.Millisecond})

	if _, _, err := c.Distfile(testCtx(t), "x.tar"); !errors.Is(err, ErrIndexNotReady) {
		t.Fatalf("before the index: %v, want ErrIndexNotReady", err)
	}
	if up.requests("/distfiles/x.tar") != 0 {
		t.Fatal("fetched before the index was ready")
	}
	w.mu.Lock()
	w.err = errors.New("tree unreadable")
	w.mu.Unlock()
	if _, _, err := c.Distfile(testCtx(t), "x.tar"); !errors.Is(err, ErrIndexNotReady) || !strings.Contains(err.Error(), "tree unreadable") {
		t.Fatalf("failed index: %v", err)
	}
	w.mu.Lock()
	w.err = nil
	w.mu.Unlock()
	go func() {
		time.Sleep(50 * time.Millisecond)
		close(w.ready)
	}()
	c.wait = 20 * time.Second
	body, _, err := c.Distfile(testCtx(t), "x.tar")
	if err == nil {
		readAll(t, body, 0)
		err = body.Wait(testCtx(t))
		body.Close()
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("after the index: %v, want ErrCorrupt (verified against it)", err)
	}
	if storedBytes(t, c, "distfiles/x.tar") != nil {
		t.Fatal("the corrupt copy was kept")
	}
}

func writeFile(name string, data []byte) error { return os.WriteFile(name, data, 0o644) }

// TestFailedDownloadTaint: a download that fails after handing out bytes
// taints its key when those bytes were to be verified (a Manifest entry),
// not otherwise (nothing is verified; resuming after an upstream break
// stays possible).
func TestFailedDownloadTaint(t *testing.T) {
	up := newUpstream(t)
	data := testData(100_000, 7)
	for _, n := range []string{"/distfiles/m.tar", "/distfiles/u.tar"} {
		up.handle(n, func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Range") != "" {
				http.Error(w, "no", http.StatusInternalServerError)
				return
			}
			breakAfter(w, data, 40_000)
		})
	}
	c := newTestCache(t, "", Options{Mirrors: []string{up.url("")}, Verifier: mapVerifier{"m.tar": distOf("m.tar", data)}})
	for _, name := range []string{"m.tar", "u.tar"} {
		b, _, err := c.Distfile(testCtx(t), name)
		if err != nil {
			t.Fatal(err)
		}
		got, rerr := readAll(t, b, 0)
		if rerr == nil || len(got) == 0 {
			t.Fatalf("%s: read %d bytes, err %v; want some bytes then an error", name, len(got), rerr)
		}
		if err := b.Wait(testCtx(t)); err == nil {
			t.Fatalf("%s: download succeeded", name)
		}
		if want := name == "m.tar"; b.Tainted() != want {
			t.Fatalf("%s: tainted=%v, want %v", name, b.Tainted(), want)
		}
		b.Close()
	}
}

// waitInactive waits (bounded) until key's download has left the active
// set: a Body made from the stored file does not wait for that, so the
// next request could still join the finished download.
func waitInactive(t *testing.T, c *Cache, key string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		_, active := c.active[key]
		c.mu.Unlock()
		if !active {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still downloading after 10s", key)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
