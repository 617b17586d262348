package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/lanmirror/lanmirror/internal/gentoo"
)

// countingMirror is a loopback GLEP 75 mirror (filename-hash BLAKE2B 8)
// that counts the requests for each distfile.
type countingMirror struct {
	*httptest.Server
	mu    sync.Mutex
	files map[string][]byte
	hits  map[string]int
}

func newCountingMirror(t *testing.T, files map[string][]byte) *countingMirror {
	t.Helper()
	lay, err := gentoo.FilenameHash("BLAKE2B", 8)
	if err != nil {
		t.Fatal(err)
	}
	m := &countingMirror{files: files, hits: map[string]int{}}
	byPath := map[string]string{}
	for n := range files {
		byPath["/distfiles/"+lay.Path(n)] = n
	}
	m.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/distfiles/layout.conf" {
			w.Write([]byte("[structure]\n0=filename-hash BLAKE2B 8\n"))
			return
		}
		p, _ := url.PathUnescape(r.URL.EscapedPath())
		name, ok := byPath[p]
		m.mu.Lock()
		m.hits[name]++
		data := m.files[name]
		m.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data)
	}))
	t.Cleanup(m.Close)
	return m
}

func (m *countingMirror) requests() (total int, per map[string]int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	per = map[string]int{}
	for n, c := range m.hits {
		per[n] = c
		total += c
	}
	return total, per
}

func TestPrefetchAtomsOneRequestPerFile(t *testing.T) {
	base := t.TempDir()
	tree := filepath.Join(base, "tree")
	data := filepath.Join(base, "data")
	pkgA := map[string][]byte{"alpha-1.tar.gz": content("alpha one", 70_000), "alpha-data.tar.xz": content("alpha data", 3000)}
	pkgB := map[string][]byte{"beta-2.tar.gz": content("beta", 150_000), "alpha-1.tar.gz": pkgA["alpha-1.tar.gz"]}
	other := map[string][]byte{"gamma-3.zip": content("gamma", 500)}
	testTree(t, tree, map[string]map[string][]byte{"app-misc/alpha": pkgA, "dev-libs/beta": pkgB, "sys-apps/gamma": other})
	all := map[string][]byte{}
	for _, p := range []map[string][]byte{pkgA, pkgB, other} {
		for n, b := range p {
			all[n] = b
		}
	}
	mirror := newCountingMirror(t, all)

	out, err := runCLI(t, "prefetch", "--data", data, "--tree", tree, "--mirror", mirror.URL, "-j", "3", "app-misc/alpha", "dev-libs/beta")
	if err != nil {
		t.Fatalf("prefetch: %v\n%s", err, out)
	}
	if !strings.Contains(out, "fetched 3 (217.8 KiB), already cached 0 (0 B), failed 0") {
		t.Errorf("summary:\n%s", out)
	}
	total, per := mirror.requests()
	if total != 3 || per["alpha-1.tar.gz"] != 1 || per["beta-2.tar.gz"] != 1 || per["alpha-data.tar.xz"] != 1 {
		t.Errorf("upstream requests: %d %v, want one per file", total, per)
	}
	got := cachedNames(t, data)
	if strings.Join(got, " ") != "alpha-1.tar.gz alpha-data.tar.xz beta-2.tar.gz" {
		t.Errorf("cache: %v", got)
	}
	for _, n := range got {
		if b, _ := os.ReadFile(filepath.Join(data, "distfiles", n)); !bytes.Equal(b, all[n]) {
			t.Errorf("cached %s differs", n)
		}
	}

	// Second run: nothing fetched.
	out, err = runCLI(t, "prefetch", "--data", data, "--tree", tree, "--mirror", mirror.URL, "app-misc/alpha", "dev-libs/beta")
	if err != nil || !strings.Contains(out, "fetched 0 (0 B), already cached 3 (217.8 KiB), failed 0") {
		t.Errorf("second run: %v\n%s", err, out)
	}
	if total, _ := mirror.requests(); total != 3 {
		t.Errorf("second run made upstream requests: %d in all", total)
	}
}

func TestPrefetchFileCorruptAndMissing(t *testing.T) {
	base := t.TempDir()
	tree := filepath.Join(base, "tree")
	data := filepath.Join(base, "data")
	good := content("good", 10_000)
	corrupt := content("corrupt", 20_000)
	testTree(t, tree, map[string]map[string][]byte{
		"app-misc/p": {"good-1.tar.gz": good, "corrupt-1.tar.gz": corrupt, "nowhere-1.tar.gz": content("nowhere", 10)},
	})
	served := bytes.Clone(corrupt)
	served[5000] ^= 0x55 // right size, wrong bytes
	mirror := newCountingMirror(t, map[string][]byte{"good-1.tar.gz": good, "corrupt-1.tar.gz": served})

	list := filepath.Join(base, "names.txt")
	os.WriteFile(list, []byte("# distfiles to have\ngood-1.tar.gz\n\ncorrupt-1.tar.gz  # bad upstream copy\nnowhere-1.tar.gz\ngood-1.tar.gz\nbad/name\n"), 0o644)
	out, err := runCLI(t, "prefetch", "--data", data, "--tree", tree, "--mirror", mirror.URL, "--file", list)
	if err == nil || !strings.Contains(err.Error(), "3 of 4 files failed") {
		t.Errorf("error = %v, want 3 of 4 failed", err)
	}
	for _, want := range []string{
		"failed  corrupt-1.tar.gz: ", "does not match the Manifest",
		"failed  nowhere-1.tar.gz: ", "not found",
		"failed  bad/name: ",
		"fetched 1 (9.8 KiB), already cached 0 (0 B), failed 3",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if got := strings.Join(cachedNames(t, data), " "); got != "good-1.tar.gz" {
		t.Errorf("cache holds %q; the corrupt copy must not be kept", got)
	}
	if _, per := mirror.requests(); per["good-1.tar.gz"] != 1 {
		t.Errorf("good file requested %d times", per["good-1.tar.gz"])
	}
}

func TestPrefetchArguments(t *testing.T) {
	base := t.TempDir()
	tree := filepath.Join(base, "tree")
	testTree(t, tree, map[string]map[string][]byte{"app-misc/p": {"p-1.tar": []byte("p")}})
	data := filepath.Join(base, "data")
	if _, err := runCLI(t, "prefetch", "--data", data); err == nil {
		t.Error("no atoms and no --file: no error")
	}
	if _, err := runCLI(t, "prefetch", "--data", data, "app-misc/p"); err == nil || !strings.Contains(err.Error(), "--tree") {
		t.Errorf("atom without tree: %v", err)
	}
	mirror := newCountingMirror(t, map[string][]byte{})
	out, err := runCLI(t, "prefetch", "--data", data, "--tree", tree, "--mirror", mirror.URL, "app-misc/missing", "not-an-atom")
	if err == nil || !strings.Contains(out, "failed  app-misc/missing: package app-misc/missing: no such package") || !strings.Contains(out, "failed  not-an-atom: ") {
		t.Errorf("bad atoms: %v\n%s", err, out)
	}
	if total, _ := mirror.requests(); total != 0 {
		t.Errorf("bad atoms caused %d upstream requests", total)
	}
}
