package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/testutil"
)

// haproxyConfig returns contrib/haproxy/haproxy.cfg with its bind address
// and server lines replaced by the test's (everything else, balancing and
// health checks included, as shipped).
func haproxyConfig(t *testing.T, bind string, nodes []string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "contrib", "haproxy", "haproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	servers := 0
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[0] == "bind":
			line = "\tbind " + bind
		case len(f) >= 3 && f[0] == "server":
			if servers == 0 {
				for i, n := range nodes {
					out = append(out, fmt.Sprintf("\tserver node%d %s", i+1, n))
				}
			}
			servers++
			continue
		}
		out = append(out, line)
	}
	if servers == 0 {
		t.Fatal("contrib/haproxy/haproxy.cfg has no server lines")
	}
	return strings.Join(out, "\n")
}

// TestHAProxyCluster: Debian's haproxy with contrib/haproxy/haproxy.cfg in
// front of two lanmirror nodes on one bucket (versitygw). 20 curl clients
// of one uncached file through HAProxy: one upstream request, every client
// has the file. Then a node is killed: HAProxy's health checks on
// /healthz take it out and every file is still served.
func TestHAProxyCluster(t *testing.T) {
	haproxy := testutil.RequireTool(t, "haproxy")
	testutil.RequireTool(t, "curl")
	s3 := testutil.StartS3(t)
	bucket := s3.Bucket(t)
	up := newHTUpstream(t)
	data := htData(2_000_000, 31)
	up.put("/distfiles/balanced-1.tar.gz", data)
	for i := range 6 {
		up.put(fmt.Sprintf("/distfiles/more-%d.tar.gz", i), htData(100_000+i, byte(40+i)))
	}
	up.slow.Store(true)
	node1, url1 := clusterNode(t, s3, bucket, up.ts.URL)
	_, url2 := clusterNode(t, s3, bucket, up.ts.URL)

	lb := htFreeAddr(t)
	cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(haproxyConfig(t, lb, []string{strings.TrimPrefix(url1, "http://"), strings.TrimPrefix(url2, "http://")})), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(haproxy, "-c", "-f", cfg).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	hp := exec.Command(haproxy, "-db", "-f", cfg)
	var hpLog htLog
	hp.Stdout, hp.Stderr = &hpLog, &hpLog
	if err := hp.Start(); err != nil {
		t.Fatal(err)
	}
	hpDone := make(chan struct{})
	go func() { hp.Wait(); close(hpDone) }()
	t.Cleanup(func() {
		hp.Process.Kill()
		<-hpDone
	})
	lbURL := "http://" + lb
	// Ready: HAProxy answers and both nodes passed their checks.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(lbURL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case <-hpDone:
			t.Fatalf("haproxy exited:\n%s", hpLog.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy not ready: %v\n%s", err, hpLog.String())
		}
	}

	dir := t.TempDir()
	const n = 20
	var wg sync.WaitGroup
	res := make([]htResult, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = curlGet(t, dir, fmt.Sprintf("c%d", i), lbURL+"/distfiles/balanced-1.tar.gz")
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
	if got := up.count("/distfiles/balanced-1.tar.gz"); got != 1 {
		t.Fatalf("%d upstream requests through HAProxy, want 1", got)
	}

	// A node dies: files are still served (retried on the other node, then
	// the node is out after its failed health checks).
	up.slow.Store(false)
	if err := node1.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-node1.exited
	for i := range 6 {
		name := fmt.Sprintf("more-%d.tar.gz", i)
		r := curlGet(t, dir, name, lbURL+"/distfiles/"+name)
		if r.code != 0 || !bytes.Equal(htReadFile(t, filepath.Join(dir, name)), htData(100_000+i, byte(40+i))) {
			t.Fatalf("%s after node 1 died: curl exit %d\n%s", name, r.code, r.out)
		}
	}
	r := curlGet(t, dir, "again", lbURL+"/distfiles/balanced-1.tar.gz")
	if r.code != 0 || !bytes.Equal(htReadFile(t, filepath.Join(dir, "again")), data) {
		t.Fatalf("cached file after node 1 died: %d %s", r.code, r.out)
	}
	if got := up.count("/distfiles/balanced-1.tar.gz"); got != 1 {
		t.Fatalf("the cached file went upstream again: %d requests", got)
	}
}
