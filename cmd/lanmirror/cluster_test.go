package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/lanmirror/lanmirror/internal/testutil"
)

// bucketWatch lists the bucket over and over while a test runs and
// records every object of key seen with a size other than want: a
// partial object made visible.
type bucketWatch struct {
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	bad     []string
	lists   int
	seenAll bool // the complete object was seen
}

func watchBucket(srv *testutil.S3Server, bucket, key string, want int64) *bucketWatch {
	w := &bucketWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			for oi := range srv.Client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
				if oi.Err != nil || oi.Key != key {
					continue
				}
				w.mu.Lock()
				if oi.Size != want {
					w.bad = append(w.bad, fmt.Sprintf("%s: %d bytes", oi.Key, oi.Size))
				} else {
					w.seenAll = true
				}
				w.mu.Unlock()
			}
			cancel()
			w.mu.Lock()
			w.lists++
			w.mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return w
}

func (w *bucketWatch) finish(t *testing.T) {
	t.Helper()
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.bad) > 0 {
		t.Fatalf("a partial object was visible in the bucket: %v", w.bad)
	}
	if w.lists < 3 {
		t.Fatalf("the bucket was listed only %d times during the test", w.lists)
	}
}

// clusterNode starts `lanmirror serve` with its objects on the bucket.
func clusterNode(t *testing.T, srv *testutil.S3Server, bucket, mirror string, extra ...string) (*htProc, string) {
	t.Helper()
	return clusterNodeAt(t, srv, bucket, mirror, htFreeAddr(t), extra...)
}

// clusterNodeAt is clusterNode listening on addr.
func clusterNodeAt(t *testing.T, srv *testutil.S3Server, bucket, mirror, addr string, extra ...string) (*htProc, string) {
	t.Helper()
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	args := append([]string{"--data", t.TempDir(), "--mirror", mirror,
		"--store", "s3://" + bucket + "/cache", "--s3-endpoint", srv.Endpoint, "--lease-ttl", "3s",
		"--advertise-url", "http://" + addr}, extra...)
	return htStartBinary(t, htBinary(t), addr, args...), "http://" + addr
}

// curlGet runs curl for url into dir/out and returns its exit code and
// output.
func curlGet(t *testing.T, dir, out, url string) htResult {
	return htRun(t, dir, nil, "curl", "-sS", "--max-time", "60", "-o", filepath.Join(dir, out), url)
}

// TestClusterOneDownload: two lanmirror processes share one bucket
// (versitygw); 20 curl clients split across them ask for one uncached
// file at once: exactly one upstream request, every client gets the
// file, the bucket never shows a partial object; a later request to
// either node is a hit from the bucket.
func TestClusterOneDownload(t *testing.T) {
	testutil.RequireTool(t, "curl")
	s3 := testutil.StartS3(t)
	bucket := s3.Bucket(t)
	up := newHTUpstream(t)
	data := htData(3_000_000, 11)
	up.put("/distfiles/shared-1.tar.gz", data)
	up.slow.Store(true) // about 1 s: the clients meet the download in progress
	_, url1 := clusterNode(t, s3, bucket, up.ts.URL)
	_, url2 := clusterNode(t, s3, bucket, up.ts.URL)
	watch := watchBucket(s3, bucket, "cache/distfiles/shared-1.tar.gz", int64(len(data)))

	dir := t.TempDir()
	const n = 20
	var wg sync.WaitGroup
	res := make([]htResult, n)
	for i := range n {
		base := url1
		if i%2 == 1 {
			base = url2
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = curlGet(t, dir, fmt.Sprintf("c%d", i), base+"/distfiles/shared-1.tar.gz")
		}()
	}
	wg.Wait()
	watch.finish(t)
	for i := range n {
		if res[i].code != 0 {
			t.Fatalf("client %d: curl exit %d\n%s", i, res[i].code, res[i].out)
		}
		if got := htReadFile(t, filepath.Join(dir, fmt.Sprintf("c%d", i))); !bytes.Equal(got, data) {
			t.Fatalf("client %d got %d bytes, not the upstream file", i, len(got))
		}
	}
	if got := up.count("/distfiles/shared-1.tar.gz"); got != 1 {
		t.Fatalf("%d upstream requests for one file across two nodes, want 1", got)
	}
	for _, u := range []string{url1, url2} {
		r := curlGet(t, dir, "again", u+"/distfiles/shared-1.tar.gz")
		if r.code != 0 || !bytes.Equal(htReadFile(t, filepath.Join(dir, "again")), data) {
			t.Fatalf("hit from %s: %d %s", u, r.code, r.out)
		}
	}
	// A Range request on a hit: a ranged read of the object.
	r := htRun(t, dir, nil, "curl", "-sS", "--fail", "-r", "1000000-1999999", "-o", filepath.Join(dir, "range"), url2+"/distfiles/shared-1.tar.gz")
	if r.code != 0 || !bytes.Equal(htReadFile(t, filepath.Join(dir, "range")), data[1000000:2000000]) {
		t.Fatalf("range of a hit: curl exit %d\n%s", r.code, r.out)
	}
	if got := up.count("/distfiles/shared-1.tar.gz"); got != 1 {
		t.Fatalf("hits went upstream: %d requests", got)
	}
	for _, k := range s3.Keys(t, bucket) {
		if strings.Contains(k, ".leases/") {
			t.Errorf("lease left behind after the download: %s", k)
		}
	}
}

// TestClusterNodeKilledMidDownload: the node downloading a file is
// killed (SIGKILL) half way; a client of the other node waits while the
// dead node's lease is live, then that node takes the lease over and
// completes the file. No partial object is ever visible in the bucket.
func TestClusterNodeKilledMidDownload(t *testing.T) {
	testutil.RequireTool(t, "curl")
	s3 := testutil.StartS3(t)
	bucket := s3.Bucket(t)
	up := newHTUpstream(t)
	data := htData(4_000_000, 12)
	up.put("/distfiles/orphan-1.tar.gz", data)
	up.slow.Store(true) // about 1.2 s
	node1, url1 := clusterNode(t, s3, bucket, up.ts.URL)
	_, url2 := clusterNode(t, s3, bucket, up.ts.URL)
	watch := watchBucket(s3, bucket, "cache/distfiles/orphan-1.tar.gz", int64(len(data)))

	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c1 := exec.CommandContext(ctx, "curl", "-sS", "-o", filepath.Join(dir, "partial"), url1+"/distfiles/orphan-1.tar.gz")
	c1.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	if err := c1.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if fi, err := os.Stat(filepath.Join(dir, "partial")); err == nil && fi.Size() > 200_000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("download did not start")
		}
	}
	leased := false
	for _, k := range s3.Keys(t, bucket) {
		leased = leased || k == "cache/.leases/distfiles/orphan-1.tar.gz"
	}
	if !leased {
		t.Fatalf("no lease object while node 1 downloads: %v", s3.Keys(t, bucket))
	}
	if err := node1.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-node1.exited
	c1.Wait()
	up.slow.Store(false)
	start := time.Now()
	r := curlGet(t, dir, "whole", url2+"/distfiles/orphan-1.tar.gz")
	waited := time.Since(start)
	watch.finish(t)
	if r.code != 0 || !bytes.Equal(htReadFile(t, filepath.Join(dir, "whole")), data) {
		t.Fatalf("node 2 after node 1 died: curl exit %d\n%s", r.code, r.out)
	}
	if got := up.count("/distfiles/orphan-1.tar.gz"); got != 2 {
		t.Fatalf("%d upstream requests, want 2 (the killed one and the takeover)", got)
	}
	t.Logf("node 2 served the file %v after node 1 was killed (lease TTL 3s)", waited.Round(time.Millisecond))
	obj, err := s3.Client.StatObject(context.Background(), bucket, "cache/distfiles/orphan-1.tar.gz", minio.StatObjectOptions{})
	if err != nil || obj.Size != int64(len(data)) {
		t.Fatalf("object in the bucket: %v %v", obj.Size, err)
	}
}

// TestClusterPeers: with --peers, a client of node 2 asking for a file
// node 1 is downloading is served by node 2 streaming it from node 1
// (node 1's access log shows node 2's request), still with one upstream
// request; the object is in the bucket once, complete.
func TestClusterPeers(t *testing.T) {
	testutil.RequireTool(t, "curl")
	s3 := testutil.StartS3(t)
	bucket := s3.Bucket(t)
	up := newHTUpstream(t)
	data := htData(4_000_000, 13)
	up.put("/distfiles/peered-1.tar.gz", data)
	up.slow.Store(true) // about 1.2 s
	addr1, addr2 := htFreeAddr(t), htFreeAddr(t)
	logs := t.TempDir()
	log1 := filepath.Join(logs, "node1.log")
	_, url1 := clusterNodeAt(t, s3, bucket, up.ts.URL, addr1, "--peers", "http://"+addr2, "--log", log1)
	_, url2 := clusterNodeAt(t, s3, bucket, up.ts.URL, addr2, "--peers", "http://"+addr1)
	watch := watchBucket(s3, bucket, "cache/distfiles/peered-1.tar.gz", int64(len(data)))

	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c1 := exec.CommandContext(ctx, "curl", "-sS", "-o", filepath.Join(dir, "one"), url1+"/distfiles/peered-1.tar.gz")
	c1.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	if err := c1.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if fi, err := os.Stat(filepath.Join(dir, "one")); err == nil && fi.Size() > 200_000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("download did not start")
		}
	}
	r := curlGet(t, dir, "two", url2+"/distfiles/peered-1.tar.gz")
	if err := c1.Wait(); err != nil {
		t.Fatalf("client of node 1: %v", err)
	}
	watch.finish(t)
	if r.code != 0 || !bytes.Equal(htReadFile(t, filepath.Join(dir, "two")), data) {
		t.Fatalf("client of node 2: curl exit %d\n%s", r.code, r.out)
	}
	if !bytes.Equal(htReadFile(t, filepath.Join(dir, "one")), data) {
		t.Fatal("client of node 1 got other bytes")
	}
	if got := up.count("/distfiles/peered-1.tar.gz"); got != 1 {
		t.Fatalf("%d upstream requests, want 1", got)
	}
	var acc []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		acc, _ = os.ReadFile(log1)
		if bytes.Count(acc, []byte("peered-1.tar.gz")) >= 2 {
			break
		}
	}
	if n := bytes.Count(acc, []byte("peered-1.tar.gz")); n != 2 {
		t.Fatalf("node 1 logged %d requests for the file, want 2 (its client and node 2):\n%s", n, acc)
	}
}

// TestBinhostOnS3: the binhost cache (--binhost-upstream) keeps its
// objects in the bucket too: a package fetched through one node is in the
// bucket and served by the other node without a second upstream request.
func TestBinhostOnS3(t *testing.T) {
	testutil.RequireTool(t, "wget")
	s3 := testutil.StartS3(t)
	bucket := s3.Bucket(t)
	up := newHTUpstream(t)
	pkg := htData(50_000, 17)
	up.put("/bin/amd64/Packages", []byte("ARCH: amd64\nPACKAGES: 1\nTIMESTAMP: 1700000000\nVERSION: 0\n\nBUILD_ID: 1\nCPV: app-misc/foo-1\nPATH: app-misc/foo/foo-1-1.gpkg.tar\nSIZE: 50000\n\n"))
	up.put("/bin/amd64/app-misc/foo/foo-1-1.gpkg.tar", pkg)
	local := t.TempDir()
	os.MkdirAll(filepath.Join(local, "All"), 0o755)
	args := []string{"--binpkgs", local, "--binhost-upstream", up.ts.URL + "/bin/amd64"}
	_, url1 := clusterNode(t, s3, bucket, "http://127.0.0.1:1/", args...)
	_, url2 := clusterNode(t, s3, bucket, "http://127.0.0.1:1/", args...)
	dir := t.TempDir()
	for _, u := range []string{url1, url1, url2} {
		r := htRun(t, dir, nil, "wget", "--no-config", "-O", "pkg", u+"/binpkgs/app-misc/foo/foo-1-1.gpkg.tar")
		if r.code != 0 || !bytes.Equal(htReadFile(t, filepath.Join(dir, "pkg")), pkg) {
			t.Fatalf("package from %s: %d %s", u, r.code, r.out)
		}
	}
	if c := up.count("/bin/amd64/app-misc/foo/foo-1-1.gpkg.tar"); c != 1 {
		t.Fatalf("upstream GETs of the package = %d, want 1", c)
	}
	obj, err := s3.Client.StatObject(context.Background(), bucket, "cache/binhost/app-misc/foo/foo-1-1.gpkg.tar", minio.StatObjectOptions{})
	if err != nil || obj.Size != int64(len(pkg)) {
		t.Fatalf("package object in the bucket: %v %v", obj.Size, err)
	}
	r := htRun(t, dir, nil, "wget", "--no-config", "-O", "Packages", url2+"/binpkgs/Packages")
	if r.code != 0 || !strings.Contains(string(htReadFile(t, filepath.Join(dir, "Packages"))), "CPV: app-misc/foo-1\n") {
		t.Fatalf("merged Packages from node 2: %d %s", r.code, r.out)
	}
}
