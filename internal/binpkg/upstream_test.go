package binpkg

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeUpstream serves an upstream index text, or fails.
type fakeUpstream struct {
	mu    sync.Mutex
	index string
	fail  bool
}

func (f *fakeUpstream) set(index string, fail bool) {
	f.mu.Lock()
	f.index, f.fail = index, fail
	f.mu.Unlock()
}

func (f *fakeUpstream) fetch(ctx context.Context) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return nil, errors.New("upstream down")
	}
	return io.NopCloser(strings.NewReader(f.index)), nil
}

const upstreamIndex = `ARCH: arm64
CHOST: aarch64-unknown-linux-gnu
PACKAGES: 3
REPO: gentoo
TIMESTAMP: 1900000000
URI: https://binhost.example/arm64
USE_EXPAND: L10N
VERSION: 0

CPV: app-misc/hello-1.0
PATH: app-misc/hello-1.0.tbz2
SIZE: 1

BUILD_ID: 1
CPV: dev-lang/go-1.26
PATH: dev-lang/go/go-1.26-1.gpkg.tar
SIZE: 100

CHOST: x86_64-pc-linux-gnu
CPV: sys-apps/up-2
SIZE: 7

`

func TestUpstreamIndexMerged(t *testing.T) {
	dir, _ := newPkgDir(t)
	h := newTestHandler(t, dir)
	up := &fakeUpstream{index: upstreamIndex}
	h.SetUpstream(up.fetch)

	w := do(h, "GET", "/Packages")
	ix := parseIndex(t, w.Body.Bytes())
	if len(ix.Packages) != len(testPkgs)+2 || ix.Header["PACKAGES"] != strconv.Itoa(len(testPkgs)+2) {
		t.Fatalf("merged index has %d packages:\n%s", len(ix.Packages), w.Body)
	}
	byPath := map[string]map[string]string{}
	for _, e := range ix.Packages {
		p := e["PATH"]
		if p == "" {
			p = e["CPV"] + ".tbz2"
		}
		byPath[p] = e
	}
	if byPath["app-misc/hello-1.0.tbz2"]["SIZE"] == "1" {
		t.Error("upstream entry won over the local file")
	}
	if e := byPath["dev-lang/go/go-1.26-1.gpkg.tar"]; e == nil || e["CHOST"] != "aarch64-unknown-linux-gnu" || e["REPO"] != "gentoo" {
		t.Errorf("upstream entry %v lacks its inherited CHOST/REPO", e)
	}
	if e := byPath["sys-apps/up-2.tbz2"]; e == nil || e["CHOST"] != "x86_64-pc-linux-gnu" {
		t.Errorf("upstream entry without PATH: %v", e)
	}
	if ix.Header["CHOST"] != "" || ix.Header["URI"] != "" || ix.Header["ARCH"] != "arm64" || ix.Header["USE_EXPAND"] != "L10N" {
		t.Errorf("merged header %v", ix.Header)
	}
	if ts := mustAtoi(t, ix.Header["TIMESTAMP"]); ts < 1900000000 {
		t.Errorf("TIMESTAMP %d below the upstream's", ts)
	}
	if lm, _ := http.ParseTime(w.Header().Get("Last-Modified")); strconv.FormatInt(lm.Unix(), 10) != ix.Header["TIMESTAMP"] {
		t.Errorf("Last-Modified %q, TIMESTAMP %s", w.Header().Get("Last-Modified"), ix.Header["TIMESTAMP"])
	}
	if got := gunzip(t, do(h, "GET", "/Packages.gz").Body.Bytes()); !bytes.Equal(got, w.Body.Bytes()) {
		t.Error("Packages.gz differs from the merged Packages")
	}
	// Unchanged sides: the same bytes, 304.
	if w2 := do(h, "GET", "/Packages"); !bytes.Equal(w2.Body.Bytes(), w.Body.Bytes()) {
		t.Error("merged index changed without a change")
	}
	if w2 := do(h, "GET", "/Packages", "If-Modified-Since", w.Header().Get("Last-Modified")); w2.Code != 304 {
		t.Errorf("If-Modified-Since: %d", w2.Code)
	}
	// Upstream down: the last merged index.
	up.set(upstreamIndex, true)
	if w2 := do(h, "GET", "/Packages"); !bytes.Equal(w2.Body.Bytes(), w.Body.Bytes()) {
		t.Error("upstream down: the last merged index is not served")
	}
	// Upstream changed: a later TIMESTAMP, the new entry.
	up.set(strings.Replace(upstreamIndex, "CPV: sys-apps/up-2", "CPV: sys-apps/up-3", 1), false)
	w3 := do(h, "GET", "/Packages")
	ix3 := parseIndex(t, w3.Body.Bytes())
	if !strings.Contains(w3.Body.String(), "CPV: sys-apps/up-3\n") || mustAtoi(t, ix3.Header["TIMESTAMP"]) <= mustAtoi(t, ix.Header["TIMESTAMP"]) {
		t.Errorf("after an upstream change:\n%s", w3.Body)
	}
	// Local change while upstream is down: merged with the last upstream
	// index read, under a later TIMESTAMP.
	up.set("", true)
	writeFile(t, dir, "app-misc/new-1.tbz2", xpakPackage(t, meta{"CATEGORY": "app-misc", "PF": "new-1", "SLOT": "0"}), time.Now())
	w4 := do(h, "GET", "/Packages")
	ix4 := parseIndex(t, w4.Body.Bytes())
	if s := w4.Body.String(); !strings.Contains(s, "CPV: app-misc/new-1\n") || !strings.Contains(s, "CPV: sys-apps/up-3\n") ||
		mustAtoi(t, ix4.Header["TIMESTAMP"]) <= mustAtoi(t, ix3.Header["TIMESTAMP"]) {
		t.Errorf("local change, upstream down:\n%s", s)
	}
	// An upstream index of another format version is not merged: the last
	// good one stays.
	up.set(strings.Replace(strings.Replace(upstreamIndex, "VERSION: 0", "VERSION: 9", 1), "sys-apps/up-2", "sys-apps/up-9", 1), false)
	for range 2 {
		if w5 := do(h, "GET", "/Packages"); !bytes.Equal(w5.Body.Bytes(), w4.Body.Bytes()) {
			t.Errorf("upstream index of VERSION 9:\n%s", w5.Body)
		}
	}
	// Before any upstream index was read, the local one alone.
	h2 := newTestHandler(t, dir)
	h2.SetUpstream((&fakeUpstream{fail: true}).fetch)
	if s := do(h2, "GET", "/Packages").Body.String(); !strings.Contains(s, "CPV: app-misc/new-1\n") || strings.Contains(s, "sys-apps/up") {
		t.Errorf("upstream never read:\n%s", s)
	}
}
