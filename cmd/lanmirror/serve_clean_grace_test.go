package main

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/config"
	"github.com/spf13/pflag"
)

// TestServeCleanGraceFlag: --clean-grace sets how long the daemon keeps
// distfiles the tree no longer references (default 30 days), and the
// periodic cleaner honours it.
func TestServeCleanGraceFlag(t *testing.T) {
	parse := func(args ...string) *config.Serve {
		t.Helper()
		cfg := &config.Serve{}
		fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
		finish := serveFlags(fs, cfg)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		if err := finish(); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	if got := parse().CleanGrace; got != 30*24*time.Hour {
		t.Fatalf("default --clean-grace = %v, want 720h", got)
	}
	cfg := parse("--clean-grace", "24h", "--clean-interval", "50ms")
	if cfg.CleanGrace != 24*time.Hour {
		t.Fatalf("--clean-grace 24h parsed as %v", cfg.CleanGrace)
	}

	base := t.TempDir()
	tree := filepath.Join(base, "tree")
	cfg.DataDir = filepath.Join(base, "data")
	cfg.Tree = tree
	day := 24 * time.Hour
	testTree(t, tree, map[string]map[string][]byte{"app-misc/p": {"a.tar.gz": content("a.tar.gz", 1000)}})
	// Both unreferenced files are older than the 1-day grace but younger
	// than the default 30 days: only the configured grace removes them.
	fillStore(t, cfg.DataDir, 1000, map[string]time.Duration{
		"a.tar.gz": 2 * day, "old-1.tar.gz": 2 * day, "old-2.tar.gz": 3 * day,
	}, nil)
	env := startComponents(t, cfg, "distindex", "clean")
	waitCached(t, env, "a.tar.gz")
}
