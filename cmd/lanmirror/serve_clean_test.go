package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/config"
)

// startComponents opens the named parts of serve for cfg (as serve
// does) and runs them until the test ends.
func startComponents(t *testing.T, cfg *config.Serve, names ...string) *server {
	t.Helper()
	srv := newServer(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard)
	ctx, cancel := context.WithCancel(context.Background())
	var dones []chan error
	for _, n := range names {
		var c *part
		parts := srv.parts()
		for i := range parts {
			if parts[i].name == n {
				c = &parts[i]
			}
		}
		if c == nil {
			cancel()
			t.Fatalf("component %s missing or not enabled", n)
		}
		run, err := c.open(ctx)
		if err != nil {
			cancel()
			t.Fatalf("open %s: %v", n, err)
		}
		done := make(chan error, 1)
		go func() { done <- run(ctx) }()
		dones = append(dones, done)
	}
	t.Cleanup(func() {
		cancel()
		for i, d := range dones {
			select {
			case err := <-d:
				if err != nil {
					t.Errorf("%s: %v", names[i], err)
				}
			case <-time.After(15 * time.Second):
				t.Errorf("%s did not stop", names[i])
			}
		}
		srv.closeDistStore()
	})
	return srv
}

// waitCached polls the store until its distfile names are want.
func waitCached(t *testing.T, env *server, want string) {
	t.Helper()
	st, err := env.distStore()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ents, err := st.Entries("distfiles/")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name)
		}
		got := strings.Join(names, " ")
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cache holds %q, want %q", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The daemon's periodic cleaning: the size cap evicts least recently
// served first, and unreferenced files unused for the grace period go.
func TestServeCleanPeriodic(t *testing.T) {
	base := t.TempDir()
	tree := filepath.Join(base, "tree")
	data := filepath.Join(base, "data")
	day := 24 * time.Hour
	names := map[string]time.Duration{
		"a.tar.gz": 2 * day, "b.tar.gz": 2 * day, "c.tar.gz": 2 * day, "d.tar.gz": 2 * day,
		"gone-1.tar.gz": 60 * day, // not in the tree, unused for 60 days
	}
	files := map[string][]byte{}
	for n := range names {
		if n != "gone-1.tar.gz" {
			files[n] = content(n, 1000)
		}
	}
	testTree(t, tree, map[string]map[string][]byte{"app-misc/p": files})
	fillStore(t, data, 1000, names, []string{"c.tar.gz", "a.tar.gz", "d.tar.gz", "b.tar.gz"})

	cfg := &config.Serve{DataDir: data, Tree: tree, MaxCache: 2500, CleanInterval: 50 * time.Millisecond}
	env := startComponents(t, cfg, "distindex", "clean")
	waitCached(t, env, "b.tar.gz d.tar.gz")

	// A file served now survives the next passes; the cap takes the other.
	st, _ := env.distStore()
	st.MarkServed("distfiles/d.tar.gz")
	time.Sleep(5 * time.Millisecond)
	st.MarkServed("distfiles/b.tar.gz")
	waitCached(t, env, "b.tar.gz d.tar.gz")
	time.Sleep(5 * time.Millisecond)
	src := filepath.Join(base, "new.tar.gz")
	os.WriteFile(src, content("new", 1000), 0o644)
	if err := st.Add("distfiles/new.tar.gz", src, false); err != nil {
		t.Fatal(err)
	}
	// new.tar.gz is unreferenced but fresh (kept); d is the least
	// recently served and goes to respect the cap.
	waitCached(t, env, "b.tar.gz new.tar.gz")
}

func TestServeCleanEnabled(t *testing.T) {
	for _, c := range []struct {
		cfg  config.Serve
		want bool
	}{
		{config.Serve{}, false},
		{config.Serve{MaxCache: 1}, true},
		{config.Serve{CleanInterval: time.Hour}, true},
	} {
		if got := cleanEnabled(&c.cfg); got != c.want {
			t.Errorf("cleanEnabled(%+v) = %v", c.cfg, got)
		}
	}
}
