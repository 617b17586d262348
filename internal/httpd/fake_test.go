package httpd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/distcache"
	"github.com/lanmirror/lanmirror/internal/gentoo"
	"github.com/lanmirror/lanmirror/internal/testutil"
)

// fakeObject is what the fake cache holds for one name or key.
type fakeObject struct {
	data    []byte
	mod     time.Time
	outcome distcache.Outcome
	// unknownSize makes Size report -1 until the body is complete.
	unknownSize bool
	// failAt > 0 makes readers fail once they reach that offset.
	failAt int
	// chunkDelay throttles readers (per 4 KiB).
	chunkDelay time.Duration
	err        error
	// etag and tainted are what the Body reports.
	etag    string
	tainted bool
}

// fakeCache is a Cache for the route tests: objects in memory, every call
// recorded.
type fakeCache struct {
	mu      sync.Mutex
	objects map[string]*fakeObject // distfile name, or key for Get
	calls   []string               // "distfile NAME ORIGINS..." or "get KEY SOURCES... volatile=B"
}

func newFakeCache() *fakeCache { return &fakeCache{objects: map[string]*fakeObject{}} }

func (c *fakeCache) put(name string, o *fakeObject) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if o.outcome == "" {
		o.outcome = distcache.Hit
	}
	if o.mod.IsZero() {
		o.mod = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	}
	c.objects[name] = o
}

func (c *fakeCache) record(s string) {
	c.mu.Lock()
	c.calls = append(c.calls, s)
	c.mu.Unlock()
}

func (c *fakeCache) callList() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.calls...)
}

func (c *fakeCache) lookup(k string) (Body, distcache.Outcome, error) {
	c.mu.Lock()
	o := c.objects[k]
	c.mu.Unlock()
	if o == nil {
		return nil, "", fmt.Errorf("%s: %w", k, distcache.ErrNotFound)
	}
	if o.err != nil {
		return nil, "", o.err
	}
	return &fakeBody{o: o}, o.outcome, nil
}

func (c *fakeCache) Get(ctx context.Context, o Object) (Body, distcache.Outcome, error) {
	c.record(fmt.Sprintf("get %s %s volatile=%v", o.Key, strings.Join(o.Sources, " "), o.Volatile))
	return c.lookup(o.Key)
}

func (c *fakeCache) Distfile(ctx context.Context, name string, origins ...string) (Body, distcache.Outcome, error) {
	c.record(strings.TrimSpace("distfile " + name + " " + strings.Join(origins, " ")))
	return c.lookup(name)
}

type fakeBody struct {
	o    *fakeObject
	done bool
}

func (b *fakeBody) Size() int64 {
	if b.o.unknownSize && !b.done {
		return -1
	}
	return int64(len(b.o.data))
}
func (b *fakeBody) ModTime() time.Time  { return b.o.mod }
func (b *fakeBody) ContentType() string { return "" }
func (b *fakeBody) ETag() string        { return b.o.etag }
func (b *fakeBody) Tainted() bool       { return b.o.tainted }
func (b *fakeBody) Close() error        { return nil }
func (b *fakeBody) Wait(ctx context.Context) error {
	if b.o.failAt > 0 {
		return fmt.Errorf("connection reset: %w", distcache.ErrUpstream)
	}
	b.done = true
	return nil
}
func (b *fakeBody) NewReader(off int64) io.ReadCloser {
	return &fakeReader{o: b.o, off: int(off)}
}

type fakeReader struct {
	o   *fakeObject
	off int
}

func (r *fakeReader) Read(p []byte) (int, error) {
	if r.o.failAt > 0 && r.off >= r.o.failAt {
		return 0, fmt.Errorf("upstream broke at %d: %w", r.off, distcache.ErrUpstream)
	}
	if r.off >= len(r.o.data) {
		return 0, io.EOF
	}
	end := len(r.o.data)
	if r.o.failAt > 0 {
		end = min(end, r.o.failAt)
	}
	if r.o.chunkDelay > 0 {
		time.Sleep(r.o.chunkDelay)
		end = min(end, r.off+4096)
	}
	n := copy(p, r.o.data[r.off:end])
	r.off += n
	return n, nil
}
func (r *fakeReader) Close() error { return nil }

// fakeVerifier knows a fixed set of DIST names.
type fakeVerifier map[string]int64

func (v fakeVerifier) Lookup(name string) (gentoo.Dist, bool) {
	n, ok := v[name]
	return gentoo.Dist{Name: name, Size: n}, ok
}

// testData returns n deterministic pseudo-random bytes.
func testData(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

// result of one external client run.
type runResult struct {
	out  string
	code int
	err  error
}

// runClient runs a stock client (wget, curl) with a deadline and a clean
// environment: only PATH, a private HOME and the given variables.
func runClient(t *testing.T, dir string, env []string, name string, args ...string) runResult {
	t.Helper()
	testutil.RequireTool(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	home := filepath.Join(dir, ".home")
	os.MkdirAll(home, 0o755)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "WGETRC=/dev/null", "CURL_HOME=" + home}, env...)
	var buf bytes.Buffer
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %v: timed out\n%s", name, args, buf.String())
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return runResult{out: buf.String(), code: code, err: err}
}
