package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/config"
	"github.com/lanmirror/lanmirror/internal/distcache"
	"github.com/lanmirror/lanmirror/internal/testutil"
)

// bigTree writes a tree of n packages (one Manifest each with a DIST
// entry of a distfile nobody fetches), plus the packages of real (name ->
// content, real digests) in one more package.
func bigTree(t *testing.T, dir string, n int, real map[string][]byte) {
	t.Helper()
	fake := "DIST %s 1234 BLAKE2B " + strings.Repeat("0a", 64) + " SHA512 " + strings.Repeat("0b", 64) + "\n"
	const cats, workers = 170, 4
	for c := range cats {
		if err := os.MkdirAll(filepath.Join(dir, fmt.Sprintf("cat-%03d", c)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				pdir := filepath.Join(dir, fmt.Sprintf("cat-%03d", i%cats), fmt.Sprintf("pkg-%05d", i))
				if err := os.Mkdir(pdir, 0o755); err != nil {
					errs <- err
					return
				}
				if err := os.WriteFile(filepath.Join(pdir, "Manifest"), fmt.Appendf(nil, fake, fmt.Sprintf("pkg-%05d-1.tar.gz", i)), 0o644); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	testTree(t, dir, map[string]map[string][]byte{"zz-real/p": real})
}

// Requests that arrive right after start, while the DIST index of a tree
// the size of Gentoo's (19,000 packages) is still being built, wait for
// it: a corrupt mirror copy of the right size is never served as complete
// (neither to Go's client nor to wget) nor cached; the good file is.
func TestServeStartWindowWaitsForTheIndex(t *testing.T) {
	wget := testutil.RequireTool(t, "wget")
	base := t.TempDir()
	tree := filepath.Join(base, "tree")
	good := content("good", 300_000)
	corrupt := content("corrupt", 250_000)
	t0 := time.Now()
	bigTree(t, tree, 19_000, map[string][]byte{"good-1.tar.gz": good, "corrupt-1.tar.gz": corrupt})
	t.Logf("tree written in %v", time.Since(t0))
	up := newHTUpstream(t)
	up.put("/distfiles/good-1.tar.gz", good)
	bad := bytes.Clone(corrupt)
	bad[10] ^= 1
	up.put("/distfiles/corrupt-1.tar.gz", bad)

	cfg := &config.Serve{DataDir: filepath.Join(base, "data"), Tree: tree, Mirrors: []string{up.ts.URL},
		HTTPAddr: htFreeAddr(t), TreeIndexWait: 2 * time.Minute}
	t0 = time.Now()
	srv := startComponents(t, cfg, "http", "distindex")
	builtBefore := srv.index.Current() != nil

	type res struct {
		name string
		code int
		body []byte
		err  error
	}
	var wg sync.WaitGroup
	results := make(chan res, 8)
	for _, name := range []string{"corrupt-1.tar.gz", "good-1.tar.gz", "corrupt-1.tar.gz", "good-1.tar.gz"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get("http://" + cfg.HTTPAddr + "/distfiles/" + name)
			if err != nil {
				results <- res{name: name, err: err}
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			results <- res{name, resp.StatusCode, b, err}
		}()
	}
	dir := t.TempDir()
	w := htRun(t, dir, nil, wget, "--no-config", "-t", "3", "-T", "60", "--passive-ftp", "-O", "corrupt-1.tar.gz",
		"http://"+cfg.HTTPAddr+"/distfiles/corrupt-1.tar.gz")
	wg.Wait()
	close(results)
	t.Logf("all answered %v after start", time.Since(t0))
	if builtBefore {
		t.Log("note: the index was already built when the first request came (fast machine): the window was not exercised")
	} else {
		t.Log("the requests arrived before the index was built")
	}
	t.Logf("wget: exit %d", w.code)
	if got, _ := os.ReadFile(filepath.Join(dir, "corrupt-1.tar.gz")); w.code == 0 && !bytes.Equal(got, corrupt) {
		t.Fatalf("wget exited 0 with a wrong file (%d bytes):\n%s", len(got), w.out)
	}
	for r := range results {
		switch r.name {
		case "corrupt-1.tar.gz":
			if r.err == nil && r.code == 200 {
				t.Fatalf("corrupt copy served as complete (%d bytes)", len(r.body))
			}
		case "good-1.tar.gz":
			if r.err != nil || r.code != 200 || !bytes.Equal(r.body, good) {
				t.Fatalf("good file: %d %v (%d bytes)", r.code, r.err, len(r.body))
			}
		}
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "distfiles", "corrupt-1.tar.gz")); !os.IsNotExist(err) {
		t.Fatalf("corrupt copy cached: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(cfg.DataDir, "distfiles", "good-1.tar.gz")); !bytes.Equal(got, good) {
		t.Fatal("good copy not cached")
	}
}

// A tree whose index cannot be built: distfile requests get 503 with
// Retry-After and the reason, at once for a tree that is no directory,
// after --tree-index-wait for a tree that does not exist (yet); nothing
// is fetched.
func TestServeIndexUnavailableIs503(t *testing.T) {
	base := t.TempDir()
	up := newHTUpstream(t)
	up.put("/distfiles/a-1.tar.gz", []byte("whatever"))
	notDir := filepath.Join(base, "file")
	os.WriteFile(notDir, []byte("x"), 0o644)
	for _, c := range []struct{ tree, want string }{
		{notDir, "could not be built"},
		{filepath.Join(base, "no-tree"), "no such file"},
	} {
		cfg := &config.Serve{DataDir: filepath.Join(base, "data"), Tree: c.tree,
			Mirrors: []string{up.ts.URL}, HTTPAddr: htFreeAddr(t), TreeIndexWait: time.Second}
		startComponents(t, cfg, "http", "distindex")
		resp, err := http.Get("http://" + cfg.HTTPAddr + "/distfiles/a-1.tar.gz")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), c.want) {
			t.Fatalf("%s: %d Retry-After=%q %q", c.tree, resp.StatusCode, resp.Header.Get("Retry-After"), b)
		}
	}
	if up.count("/distfiles/a-1.tar.gz") != 0 {
		t.Fatal("fetched without a verifiable index")
	}
}

// cacheFiles puts name -> data into the cache below data.
func cacheFiles(t *testing.T, data string, files map[string][]byte) {
	t.Helper()
	st, err := distcache.OpenStore(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	src := t.TempDir()
	for n, b := range files {
		p := filepath.Join(src, n)
		os.WriteFile(p, b, 0o644)
		if err := st.Add(distcache.DistfilesPrefix+n, p, false); err != nil {
			t.Fatal(err)
		}
	}
}

// lanmirror verify-cache: a corrupted cached file is quarantined (exit
// status 1, named in the output), good ones and unknown ones stay; a
// dry run moves nothing; a second run is clean (exit 0).
func TestVerifyCacheCLI(t *testing.T) {
	base := t.TempDir()
	tree, data := filepath.Join(base, "tree"), filepath.Join(base, "data")
	good, other := content("good", 100_000), content("other", 70_000)
	testTree(t, tree, map[string]map[string][]byte{"app-misc/p": {"good-1.tar.gz": good, "other-1.tar.gz": other}})
	damaged := bytes.Clone(other)
	damaged[5000] ^= 0x20
	cacheFiles(t, data, map[string][]byte{"good-1.tar.gz": good, "other-1.tar.gz": damaged, "local-1.tar.gz": []byte("not in the tree")})

	out, err := runCLI(t, "verify-cache", "--data", data, "--tree", tree, "--dry-run")
	if err == nil || !strings.Contains(out, "would quarantine other-1.tar.gz: BLAKE2B") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(data, "distfiles", "other-1.tar.gz")); err != nil {
		t.Fatal("dry run moved the file")
	}
	out, err = runCLI(t, "verify-cache", "--data", data, "--tree", tree)
	if err == nil || !strings.Contains(err.Error(), "1 cached distfiles did not match") ||
		!strings.Contains(out, "quarantined other-1.tar.gz") || !strings.Contains(out, "2 checked") || !strings.Contains(out, "1 not in the tree") {
		t.Fatalf("verify-cache: %v\n%s", err, out)
	}
	q, _ := filepath.Glob(filepath.Join(data, "quarantine", "other-1.tar.gz.*"))
	if len(q) != 2 { // the file and its .why note
		t.Fatalf("quarantine holds %v", q)
	}
	for _, n := range []string{"good-1.tar.gz", "local-1.tar.gz"} {
		if _, err := os.Stat(filepath.Join(data, "distfiles", n)); err != nil {
			t.Fatalf("%s moved: %v", n, err)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "distfiles", "other-1.tar.gz")); !os.IsNotExist(err) {
		t.Fatal("damaged file still cached")
	}
	if out, err := runCLI(t, "verify-cache", "--data", data, "--tree", tree); err != nil || !strings.Contains(out, "0 quarantined") {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "verify-cache", "--data", data); err == nil || !strings.Contains(err.Error(), "no tree") {
		t.Fatalf("without a tree: %v", err)
	}
}

// serve --verify-cache: the background pass quarantines a damaged cached
// file once the index is built; the next request fetches a good copy.
func TestServeVerifyCachePass(t *testing.T) {
	base := t.TempDir()
	tree, data := filepath.Join(base, "tree"), filepath.Join(base, "data")
	good := content("fine", 120_000)
	testTree(t, tree, map[string]map[string][]byte{"app-misc/q": {"fine-1.tar.gz": good}})
	damaged := bytes.Clone(good)
	damaged[0] ^= 1
	cacheFiles(t, data, map[string][]byte{"fine-1.tar.gz": damaged})
	up := newHTUpstream(t)
	up.put("/distfiles/fine-1.tar.gz", good)
	cfg := &config.Serve{DataDir: data, Tree: tree, Mirrors: []string{up.ts.URL}, HTTPAddr: htFreeAddr(t), VerifyCache: true}
	startComponents(t, cfg, "http", "distindex", "verifycache")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if q, _ := filepath.Glob(filepath.Join(data, "quarantine", "fine-1.tar.gz.*")); len(q) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the damaged file was not quarantined")
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := http.Get("http://" + cfg.HTTPAddr + "/distfiles/fine-1.tar.gz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(b, good) {
		t.Fatalf("after quarantine: %d, good=%v", resp.StatusCode, bytes.Equal(b, good))
	}
	if up.count("/distfiles/fine-1.tar.gz") != 1 {
		t.Fatal("the good copy was not fetched again")
	}
	// Without a tree, serve refuses --verify-cache.
	srv := newServer(&config.Serve{DataDir: t.TempDir(), VerifyCache: true}, nil, nil)
	for _, p := range srv.parts() {
		if p.name == "verifycache" {
			if _, err := p.open(context.Background()); err == nil || !strings.Contains(err.Error(), "needs a tree") {
				t.Fatalf("--verify-cache without a tree: %v", err)
			}
		}
	}
}
