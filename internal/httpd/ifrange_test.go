package httpd

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/distcache"
	"github.com/lanmirror/lanmirror/internal/gentoo"
	"github.com/lanmirror/lanmirror/internal/testutil"
)

// TestETagIfRangeAndTaint: the ETag is announced; If-Range with it gives
// 206, with another tag 200 and the whole file; a tainted object refuses
// a continuation without tag proof with 409 (a date is no proof) and
// still serves whole requests and ranges from 0.
func TestETagIfRangeAndTaint(t *testing.T) {
	testutil.RequireTool(t, "curl")
	e := startServer(t, Options{})
	data := testData(100_000, 9)
	const tag = `"blake2b-00112233445566778899aabbccddeeff"`
	e.cache.put("e.tar", &fakeObject{data: data, etag: tag})
	u := e.url + "/distfiles/e.tar"

	r := e.curl("-sS", "-I", u)
	if !strings.Contains(strings.ToLower(r.out), strings.ToLower("ETag: "+tag)) {
		t.Fatalf("HEAD lacks the ETag:\n%s", r.out)
	}
	get := func(hdrs ...string) (int, string) {
		var args []string
		for _, h := range hdrs {
			args = append(args, "-H", h)
		}
		return e.status(append(args, u)...)
	}
	if code, body := get("Range: bytes=1000-", "If-Range: "+tag); code != 206 || body != string(data[1000:]) {
		t.Fatalf("If-Range matching: %d (%d bytes)", code, len(body))
	}
	if code, body := get("Range: bytes=1000-", `If-Range: "dl-feedface-0"`); code != 200 || body != string(data) {
		t.Fatalf("If-Range other tag: %d (%d bytes)", code, len(body))
	}
	if code, body := get("Range: bytes=1000-", "If-Range: W/"+tag); code != 200 || body != string(data) {
		t.Fatalf("If-Range weak tag: %d (%d bytes)", code, len(body))
	}
	if code, body := get("Range: bytes=1000-"); code != 206 || body != string(data[1000:]) {
		t.Fatalf("untainted continuation: %d", code)
	}

	e.cache.put("e.tar", &fakeObject{data: data, etag: tag, tainted: true})
	for _, hdrs := range [][]string{
		{"Range: bytes=1000-"},
		{"Range: bytes=-5000"},
		{"Range: bytes=1000-", "If-Range: Fri, 01 Mar 2024 12:00:00 GMT"},
	} {
		code, body := get(hdrs...)
		if code != http.StatusConflict || !strings.Contains(body, "delete the partial file") || !strings.Contains(body, tag) {
			t.Fatalf("tainted %v: %d %q", hdrs, code, body)
		}
	}
	if code, body := get("Range: bytes=1000-", "If-Range: "+tag); code != 206 || body != string(data[1000:]) {
		t.Fatalf("tainted, proven: %d", code)
	}
	if code, body := get("Range: bytes=0-99"); code != 206 || body != string(data[:100]) {
		t.Fatalf("tainted, range from 0: %d", code)
	}
	if code, body := get(); code != 200 || body != string(data) {
		t.Fatalf("tainted, whole: %d", code)
	}
	if !strings.Contains(e.access.String(), " 409 ") || !strings.Contains(e.access.String(), "REFUSED") {
		t.Fatalf("access log lacks the refusal:\n%s", e.access)
	}

	// The stock clients' retries on a tainted object fail, leaving the
	// partial file alone.
	part := data[:40_000]
	for i, args := range [][]string{
		{"wget", "--no-config", "-c", "-t", "3", "-T", "60", "--passive-ftp", "-O", "w1", u},
		{"curl", "-sS", "-C", "-", "-o", "c1", u},
		{"curl", "-fsS", "-C", "-", "-o", "c2", u},
	} {
		if args[0] == "wget" {
			testutil.RequireTool(t, "wget")
		}
		out := args[len(args)-2]
		os.WriteFile(filepath.Join(e.dir, out), part, 0o644)
		r := runClient(t, e.dir, nil, args[0], args[1:]...)
		if r.code == 0 {
			t.Fatalf("client %d %v exited 0 on a refused continuation:\n%s", i, args, r.out)
		}
		if !bytes.Equal(e.file(out), part) {
			t.Fatalf("client %d %v changed the partial file", i, args)
		}
	}
}

// TestIndexNotReadyIs503: a distfile asked before the tree's DIST index
// is ready gets 503 with Retry-After and the reason.
func TestIndexNotReadyIs503(t *testing.T) {
	testutil.RequireTool(t, "curl")
	e := startServer(t, Options{})
	e.cache.put("n.tar", &fakeObject{err: fmt.Errorf("distcache: %w: not built after 30s", distcache.ErrIndexNotReady)})
	r := e.curl("-sS", "-D", "-", e.url+"/distfiles/n.tar")
	for _, want := range []string{" 503 ", "Retry-After: 10", "DIST index of the tree is not ready"} {
		if !strings.Contains(r.out, want) {
			t.Fatalf("answer lacks %q:\n%s", want, r.out)
		}
	}
}

// indexWaiter: its first build failed (Ready closed at once); it knows
// its names once built is closed (a tree published by the first pull).
type indexWaiter struct {
	built chan struct{}
	names fakeVerifier
}

func (v *indexWaiter) Ready() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

func (v *indexWaiter) Lookup(name string) (gentoo.Dist, bool) {
	select {
	case <-v.built:
		return v.names.Lookup(name)
	default:
		return gentoo.Dist{}, false
	}
}

func (v *indexWaiter) WaitIndexed(ctx context.Context) error {
	select {
	case <-v.built:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Fetch-through waits for an index that does not exist yet (first pull
// of the tree) rather than refusing the origin of a name it will know.
func TestFetchThroughWaitsForTheFirstIndex(t *testing.T) {
	testutil.RequireTool(t, "curl")
	v := &indexWaiter{built: make(chan struct{}), names: fakeVerifier{"first-1.tar.gz": 10}}
	e := startServer(t, Options{Policy: &Policy{}, Verifier: v})
	e.cache.put("first-1.tar.gz", &fakeObject{data: []byte("0123456789")})
	time.AfterFunc(300*time.Millisecond, func() { close(v.built) })
	code, body := e.status(e.url + "/fetch/first-1.tar.gz?uri=https://8.8.8.8/first-1.tar.gz")
	if code != 200 || body != "0123456789" {
		t.Fatalf("%d %q", code, body)
	}
	if !slices.Contains(e.cache.callList(), "distfile first-1.tar.gz https://8.8.8.8/first-1.tar.gz") {
		t.Fatalf("origin not passed once the index was built: %v", e.cache.callList())
	}
}
