package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/distcache"
)

// fillStore puts files (name -> mtime age) of size bytes each into the
// store at data, then marks served the names in served, in that order.
func fillStore(t *testing.T, data string, size int, files map[string]time.Duration, served []string) {
	t.Helper()
	st, err := distcache.OpenStore(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	for n, age := range files {
		p := filepath.Join(src, n)
		os.WriteFile(p, content(n, size), 0o644)
		mt := time.Now().Add(-age)
		os.Chtimes(p, mt, mt)
		if err := st.Add(distcache.DistfilesPrefix+n, p, false); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range served {
		st.MarkServed(distcache.DistfilesPrefix + n)
		time.Sleep(3 * time.Millisecond) // distinct, ordered served times
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCleanSizeCapServedOrder(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	day := 24 * time.Hour
	// All old on disk; the served order decides: c a e b d (d most recent).
	fillStore(t, data, 1000, map[string]time.Duration{
		"a.tar.gz": 5 * day, "b.tar.gz": 9 * day, "c.tar.gz": 1 * day, "d.tar.gz": 3 * day, "e.tar.gz": 2 * day,
	}, []string{"c.tar.gz", "a.tar.gz", "e.tar.gz", "b.tar.gz", "d.tar.gz"})

	out, err := runCLI(t, "clean", "--data", data, "--max-cache", "2500", "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"would remove c.tar.gz (1000 B, size-cap; last served ", "would remove a.tar.gz", "would remove e.tar.gz",
		"would remove 3 of 5 files, freeing 2.9 KiB (cache 4.9 KiB -> 2.0 KiB)"}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("dry run output lacks %q:\n%s", w, out)
		}
	}
	if strings.Index(out, "c.tar.gz") > strings.Index(out, "a.tar.gz") || strings.Index(out, "a.tar.gz") > strings.Index(out, "e.tar.gz") {
		t.Errorf("not in served order:\n%s", out)
	}
	if got := len(cachedNames(t, data)); got != 5 {
		t.Fatalf("dry run removed files: %d left", got)
	}

	out, err = runCLI(t, "clean", "--data", data, "--max-cache", "2500")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "removed 3 of 5 files, freed 2.9 KiB") {
		t.Errorf("output:\n%s", out)
	}
	if got := strings.Join(cachedNames(t, data), " "); got != "b.tar.gz d.tar.gz" {
		t.Errorf("left %q, want the two most recently served", got)
	}
	// Under the cap now: nothing more.
	out, _ = runCLI(t, "clean", "--data", data, "--max-cache", "2500")
	if !strings.Contains(out, "removed 0 of 2 files") {
		t.Errorf("second run:\n%s", out)
	}
}

func TestCleanUnreferencedAfterGrace(t *testing.T) {
	base := t.TempDir()
	tree := filepath.Join(base, "tree")
	data := filepath.Join(base, "data")
	day := 24 * time.Hour
	testTree(t, tree, map[string]map[string][]byte{
		"app-misc/ref": {"ref-old.tar.gz": content("ref-old.tar.gz", 500)},
	})
	fillStore(t, data, 500, map[string]time.Duration{
		"ref-old.tar.gz":      100 * day, // referenced: kept however old
		"unref-old.tar.gz":    40 * day,  // unreferenced, unused for 40 days: removed
		"unref-recent.tar.gz": 1 * day,   // unreferenced but new: kept
		"unref-served.tar.gz": 90 * day,  // unreferenced, old file, served just now: kept
	}, []string{"unref-served.tar.gz"})

	out, err := runCLI(t, "clean", "--data", data, "--tree", tree, "--grace", "30d", "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "would remove unref-old.tar.gz (500 B, unreferenced; never served, modified ") ||
		!strings.Contains(out, "would remove 1 of 4 files, freeing 500 B") {
		t.Errorf("dry run:\n%s", out)
	}
	if got := len(cachedNames(t, data)); got != 4 {
		t.Fatalf("dry run removed files: %d left", got)
	}
	if _, err := runCLI(t, "clean", "--data", data, "--tree", tree, "--grace", "30d"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cachedNames(t, data), " "); got != "ref-old.tar.gz unref-recent.tar.gz unref-served.tar.gz" {
		t.Errorf("left %q", got)
	}
	// A shorter grace period takes the recent one too, never the referenced.
	runCLI(t, "clean", "--data", data, "--tree", tree, "--grace", "12h")
	if got := strings.Join(cachedNames(t, data), " "); got != "ref-old.tar.gz unref-served.tar.gz" {
		t.Errorf("after --grace 12h: %q", got)
	}
}

func TestCleanRefusals(t *testing.T) {
	base := t.TempDir()
	data := filepath.Join(base, "data")
	fillStore(t, data, 10, map[string]time.Duration{"x.tar": 100 * 24 * time.Hour}, nil)
	if _, err := runCLI(t, "clean", "--data", data); err == nil || !strings.Contains(err.Error(), "nothing to do") {
		t.Errorf("no tree, no cap: %v", err)
	}
	empty := filepath.Join(base, "empty-tree")
	os.MkdirAll(filepath.Join(empty, "app-misc", "x"), 0o755)
	if _, err := runCLI(t, "clean", "--data", data, "--tree", empty); err == nil || !strings.Contains(err.Error(), "no DIST entries") {
		t.Errorf("tree without DIST entries: %v", err)
	}
	if _, err := runCLI(t, "clean", "--data", data, "--max-cache", "1G", "--grace", "soon"); err == nil {
		t.Error("bad --grace accepted")
	}
	if _, err := runCLI(t, "clean", "--data", data, "--max-cache", "lots"); err == nil {
		t.Error("bad --max-cache accepted")
	}
	if _, err := runCLI(t, "clean", "--data", filepath.Join(base, "nothing"), "--max-cache", "1G"); err == nil {
		t.Error("clean of a missing data dir: no error")
	} else if _, serr := os.Stat(filepath.Join(base, "nothing")); !os.IsNotExist(serr) {
		t.Error("clean created a missing data dir")
	}
	if got := cachedNames(t, data); len(got) != 1 {
		t.Errorf("refused runs removed files: %v", got)
	}
	for in, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "1.5d": 36 * time.Hour, "12h": 12 * time.Hour, "0": 0} {
		if got, err := parseAge(in); err != nil || got != want {
			t.Errorf("parseAge(%s) = %v, %v", in, got, err)
		}
	}
}
