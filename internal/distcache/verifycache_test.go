package distcache

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/metrics"
)

// addFile puts data into the store as distfile name.
func addFile(t *testing.T, s *Store, name string, data []byte) {
	t.Helper()
	src := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(DistfilesPrefix+name, src, false); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyDistfilesQuarantines: a corrupt copy of the right size and a
// copy of the wrong size go to quarantine with the reason; good files and
// files the tree does not know stay; a dry run moves nothing.
func TestVerifyDistfilesQuarantines(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	good, bad, short := testData(300<<10, 1), testData(5000, 2), testData(4000, 3)
	corrupt := append([]byte(nil), bad...)
	corrupt[4999] ^= 1
	addFile(t, s, "good.tar", good)
	addFile(t, s, "bad.tar", corrupt)
	addFile(t, s, "short.tar", short[:3999])
	addFile(t, s, "other.tar", []byte("not in the tree"))
	v := mapVerifier{"good.tar": distOf("good.tar", good), "bad.tar": distOf("bad.tar", bad), "short.tar": distOf("short.tar", short)}
	q0 := counterValue(metrics.CacheVerified.WithLabelValues("quarantined"))

	r, err := s.VerifyDistfiles(context.Background(), VerifyOptions{Verifier: v, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.Quarantined != 2 || r.OK != 1 || r.Unknown != 1 || r.Checked != 3 {
		t.Fatalf("dry run: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "distfiles", "bad.tar")); err != nil {
		t.Fatal("dry run moved a file")
	}

	r, err = s.VerifyDistfiles(context.Background(), VerifyOptions{Verifier: v})
	if err != nil {
		t.Fatal(err)
	}
	if r.Quarantined != 2 || r.OK != 1 || r.Unknown != 1 || r.Errors != 0 {
		t.Fatalf("report: %+v", r)
	}
	if got := counterValue(metrics.CacheVerified.WithLabelValues("quarantined")) - q0; got != 4 {
		t.Fatalf("quarantined metric went up by %v, want 4 (2 dry, 2 real)", got)
	}
	for _, n := range []string{"good.tar", "other.tar"} {
		if _, err := os.Stat(filepath.Join(dir, "distfiles", n)); err != nil {
			t.Fatalf("%s was moved: %v", n, err)
		}
	}
	whys := map[string]string{}
	for _, p := range r.Bad {
		whys[p.Name] = p.Why
		if _, err := os.Stat(filepath.Join(dir, "distfiles", p.Name)); err == nil {
			t.Fatalf("%s still in the cache", p.Name)
		}
		moved, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p.Moved)))
		if err != nil || !strings.HasPrefix(p.Moved, "quarantine/"+p.Name+".") {
			t.Fatalf("%s moved to %q: %v", p.Name, p.Moved, err)
		}
		note, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p.Moved)+".why"))
		if err != nil || !strings.Contains(string(note), p.Why) {
			t.Fatalf("note of %s: %q %v", p.Name, note, err)
		}
		if p.Name == "bad.tar" && !bytes.Equal(moved, corrupt) {
			t.Fatal("quarantined bytes differ from the cached ones")
		}
	}
	if !strings.Contains(whys["bad.tar"], "BLAKE2B") || !strings.Contains(whys["short.tar"], "size 3999") {
		t.Fatalf("reasons: %v", whys)
	}
	// The quarantine is no object directory: not listed, not a key.
	if ents, _ := s.Entries(""); len(ents) != 2 {
		t.Fatalf("entries after quarantine: %v", ents)
	}
	if err := CheckKey("quarantine/x"); err == nil {
		t.Fatal("quarantine/ accepted as a key")
	}
	// A second pass finds everything good.
	if r, err := s.VerifyDistfiles(context.Background(), VerifyOptions{Verifier: v}); err != nil || r.Quarantined != 0 || r.OK != 1 {
		t.Fatalf("second pass: %+v %v", r, err)
	}
}

// TestQuarantineLeavesAReplacedFile: a file replaced after it was checked
// (a new download committed) is not moved.
func TestQuarantineLeavesAReplacedFile(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	addFile(t, s, "r.tar", []byte("old"))
	f, fi, err := s.Open(DistfilesPrefix + "r.tar")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	addFile(t, s, "r.tar", []byte("new"))
	moved, err := s.Quarantine(DistfilesPrefix+"r.tar", fi, "test")
	if err != nil || moved != "" {
		t.Fatalf("moved %q, %v", moved, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "distfiles", "r.tar")); string(b) != "new" {
		t.Fatalf("replaced file: %q", b)
	}
}

// A quarantined file stops being served at once, also when the cache kept
// a copy of it in memory (small files): the next request downloads it.
func TestQuarantineDropsTheCopyInMemory(t *testing.T) {
	up := newUpstream(t)
	good := testData(5000, 9)
	up.handle("/distfiles/q.tar", serveBytes(good, time.Unix(1700000000, 0)))
	corrupt := append([]byte(nil), good...)
	corrupt[10] ^= 1
	v := mapVerifier{"q.tar": distOf("q.tar", good)}
	c := newTestCache(t, "", Options{Mirrors: []string{up.url("")}, Verifier: v})
	addFile(t, c.store, "q.tar", corrupt)
	for range 2 { // the second hit comes from memory
		b, o, err := c.Distfile(testCtx(t), "q.tar")
		if err != nil || o != Hit {
			t.Fatal(o, err)
		}
		got, _ := readAll(t, b, 0)
		b.Close()
		if !bytes.Equal(got, corrupt) {
			t.Fatal("the cached copy was not served")
		}
	}
	r, err := c.store.VerifyDistfiles(context.Background(), VerifyOptions{Verifier: v})
	if err != nil || r.Quarantined != 1 {
		t.Fatalf("%+v %v", r, err)
	}
	b, o, err := c.Distfile(testCtx(t), "q.tar")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := readAll(t, b, 0)
	b.Close()
	if o == Hit || !bytes.Equal(got, good) {
		t.Fatalf("after quarantine: %s, good bytes %v", o, bytes.Equal(got, good))
	}
}
