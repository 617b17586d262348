package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/config"
)

// serve with --tree: the distfiles cache checks downloads against the
// tree's DIST entries; a corrupt upstream copy (right size, wrong bytes)
// is never served as complete nor cached, a good one is.
func TestServeVerifiesAgainstTree(t *testing.T) {
	base := t.TempDir()
	tree := filepath.Join(base, "tree")
	good := content("good", 200_000)
	corrupt := content("corrupt", 150_000)
	testTree(t, tree, map[string]map[string][]byte{"app-misc/p": {"good-1.tar.gz": good, "corrupt-1.tar.gz": corrupt}})
	up := newHTUpstream(t)
	up.put("/distfiles/good-1.tar.gz", good)
	bad := bytes.Clone(corrupt)
	bad[len(bad)/2] ^= 1
	up.put("/distfiles/corrupt-1.tar.gz", bad)

	cfg := &config.Serve{DataDir: filepath.Join(base, "data"), Tree: tree, Mirrors: []string{up.ts.URL}, HTTPAddr: htFreeAddr(t)}
	env := startComponents(t, cfg, "distindex", "http")
	ti := env.index
	if ti == nil {
		t.Fatal("no tree index for --tree")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := ti.Wait(ctx); err != nil {
		t.Fatal(err)
	}

	get := func(name string) (int, []byte, error) {
		resp, err := http.Get("http://" + cfg.HTTPAddr + "/distfiles/" + name)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}
	if code, b, err := get("good-1.tar.gz"); code != 200 || err != nil || !bytes.Equal(b, good) {
		t.Fatalf("good file: %d, %v, %d bytes", code, err, len(b))
	}
	code, b, err := get("corrupt-1.tar.gz")
	if code == 200 && err == nil {
		t.Fatalf("corrupt upstream copy served as complete (%d bytes)", len(b))
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "distfiles", "corrupt-1.tar.gz")); !os.IsNotExist(err) {
		t.Errorf("corrupt copy cached: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "distfiles", "good-1.tar.gz")); err != nil {
		t.Errorf("good copy not cached: %v", err)
	}
}

func TestDistVerifierWithoutTree(t *testing.T) {
	srv := newServer(&config.Serve{HTTPAddr: ":0", MaxCache: 1}, nil, nil)
	if v := srv.verifier(); v != nil {
		t.Errorf("verifier without tree = %#v, want nil", v)
	}
	for _, c := range srv.parts() {
		if c.name == "distindex" {
			t.Error("distindex enabled without a tree")
		}
	}
	srv = newServer(&config.Serve{HTTPAddr: ":0", Tree: t.TempDir()}, nil, nil)
	if srv.verifier() == nil {
		t.Error("no verifier with a tree")
	}
	found := false
	for _, c := range srv.parts() {
		found = found || c.name == "distindex"
	}
	if !found {
		t.Error("distindex not enabled with a tree and the HTTP side")
	}
}
