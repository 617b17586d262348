package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/testutil"
)

// TestTiers: a site lanmirror uses a central lanmirror as its --mirror
// and --tree-upstream (two processes; central uses a local test server as
// its upstream). 20 curl clients of the site ask for one uncached file at
// once: one request from the site to central, one from central upstream,
// every client has the file; the site's tree is pulled from central's
// rsync daemon.
func TestTiers(t *testing.T) {
	testutil.RequireTool(t, "curl")
	testutil.RequireTool(t, "rsync")
	up := newHTUpstream(t)
	data := htData(2_000_000, 21)
	up.put("/distfiles/tiered-1.tar.gz", data)
	up.slow.Store(true)

	work := worldReadableDir(t)
	tree := filepath.Join(work, "tree")
	writeTestFile(t, tree, "metadata/timestamp.chk", "Thu, 03 Dec 2026 12:00:00 +0000\n", 0o644)
	writeTestFile(t, tree, "app-misc/hello/hello-1.ebuild", "EAPI=8\n", 0o644)
	if err := os.Chmod(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := htBinary(t)
	centralData := t.TempDir()
	centralHTTP, centralRsync := htFreeAddr(t), htFreeAddr(t)
	htStartBinary(t, bin, centralHTTP, "--data", centralData, "--mirror", up.ts.URL,
		"--rsync", centralRsync, "--tree", tree, "--log", filepath.Join(centralData, "access.log"))
	siteData := t.TempDir()
	siteHTTP := htFreeAddr(t)
	htStartBinary(t, bin, siteHTTP, "--data", siteData, "--mirror", "http://"+centralHTTP,
		"--tree-upstream", "rsync://"+centralRsync+"/gentoo-portage/", "--tree-interval", "1h")

	dir := t.TempDir()
	const n = 20
	var wg sync.WaitGroup
	res := make([]htResult, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = curlGet(t, dir, fmt.Sprintf("c%d", i), "http://"+siteHTTP+"/distfiles/tiered-1.tar.gz")
		}()
	}
	wg.Wait()
	for i := range n {
		if res[i].code != 0 {
			t.Fatalf("client %d: curl exit %d\n%s", i, res[i].code, res[i].out)
		}
		if got := htReadFile(t, filepath.Join(dir, fmt.Sprintf("c%d", i))); !bytes.Equal(got, data) {
			t.Fatalf("client %d got %d bytes, not the upstream file", i, len(got))
		}
	}
	if got := up.count("/distfiles/tiered-1.tar.gz"); got != 1 {
		t.Fatalf("%d upstream requests for %d site clients, want 1", got, n)
	}
	// (The site asks central at its GLEP 75 path, /distfiles/XX/NAME.)
	// (The access log is written in batches: wait for the line.)
	var log string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if log = string(htReadFile(t, filepath.Join(centralData, "access.log"))); strings.Contains(log, "tiered-1.tar.gz") {
			break
		}
	}
	if strings.Count(log, "tiered-1.tar.gz") != 1 {
		t.Fatalf("central logged %d requests for the file, want 1 (from the site):\n%s", strings.Count(log, "tiered-1.tar.gz"), log)
	}
	// The site's tree comes from central's rsync daemon.
	want := "Thu, 03 Dec 2026 12:00:00 +0000\n"
	var got []byte
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		got, _ = os.ReadFile(filepath.Join(siteData, "tree", "current", "metadata", "timestamp.chk"))
		if string(got) == want {
			break
		}
	}
	if string(got) != want {
		t.Fatalf("site tree snapshot: timestamp.chk %q, want %q", got, want)
	}
	if b, err := os.ReadFile(filepath.Join(siteData, "tree", "current", "app-misc", "hello", "hello-1.ebuild")); err != nil || string(b) != "EAPI=8\n" {
		t.Fatalf("site tree snapshot: ebuild %q %v", b, err)
	}
}
