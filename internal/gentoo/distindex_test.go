package gentoo

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// genTree writes an ebuild repository below dir: ncat categories of npkg
// packages, each with ndist DIST entries whose digests are those of
// distContent(name). It returns every Dist by name. The first DIST of each
// package after the first is also listed by the previous package (shared
// distfiles, as in real trees).
func genTree(tb testing.TB, dir, tag string, ncat, npkg, ndist int, realDigests bool) map[string]Dist {
	tb.Helper()
	all := map[string]Dist{}
	var cats []string
	var prev Dist
	for c := 0; c < ncat; c++ {
		cat := fmt.Sprintf("cat-%s%02d", tag, c)
		cats = append(cats, cat)
		for p := 0; p < npkg; p++ {
			pdir := filepath.Join(dir, cat, fmt.Sprintf("pkg%03d", p))
			if err := os.MkdirAll(pdir, 0o755); err != nil {
				tb.Fatal(err)
			}
			var lines []string
			lines = append(lines, "EBUILD pkg-1.ebuild 10 BLAKE2B "+strings.Repeat("00", 64))
			for i := 0; i < ndist; i++ {
				name := fmt.Sprintf("%s-%s-%d-%d.tar.gz", cat, tag, p, i)
				var d Dist
				if realDigests {
					d = distOf(name, distContent(name))
				} else {
					d = Dist{Name: name, Size: int64(1000 + i), BLAKE2B: make([]byte, 64), SHA512: make([]byte, 64)}
					rand.Read(d.BLAKE2B)
					rand.Read(d.SHA512)
				}
				all[name] = d
				lines = append(lines, FormatDistLine(d))
			}
			if prev.Name != "" {
				lines = append(lines, FormatDistLine(prev))
			}
			if ndist > 0 {
				prev = all[fmt.Sprintf("%s-%s-%d-0.tar.gz", cat, tag, p)]
			}
			if err := os.WriteFile(filepath.Join(pdir, "Manifest"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
				tb.Fatal(err)
			}
		}
	}
	os.MkdirAll(filepath.Join(dir, "profiles"), 0o755)
	os.WriteFile(filepath.Join(dir, "profiles", "categories"), []byte(strings.Join(cats, "\n")+"\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "metadata"), 0o755)
	os.WriteFile(filepath.Join(dir, "metadata", "timestamp.chk"), []byte(time.Now().UTC().Format(time.RFC1123Z)+"\n"), 0o644)
	return all
}

// distContent is the deterministic content of a generated distfile.
func distContent(name string) []byte {
	return bytes.Repeat([]byte(name+"\n"), 1+len(name)%7)
}

func sameDist(a, b Dist) bool {
	return a.Name == b.Name && a.Size == b.Size && bytes.Equal(a.BLAKE2B, b.BLAKE2B) && bytes.Equal(a.SHA512, b.SHA512)
}

func TestDistIndexGeneratedTree(t *testing.T) {
	dir := t.TempDir()
	all := genTree(t, dir, "a", 6, 50, 3, true) // 300 packages
	// Things that are not packages or not DIST: a category Manifest.gz,
	// metadata with DATA lines, a package without Manifest, an unlisted
	// category (ignored because profiles/categories exists), a garbage
	// Manifest line.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("DATA pkg000/Manifest 10 BLAKE2B " + strings.Repeat("11", 64) + "\n"))
	zw.Close()
	os.WriteFile(filepath.Join(dir, "cat-a00", "Manifest.gz"), gz.Bytes(), 0o644)
	os.MkdirAll(filepath.Join(dir, "cat-a01", "no-distfiles"), 0o755)
	os.MkdirAll(filepath.Join(dir, "unlisted", "pkg"), 0o755)
	os.WriteFile(filepath.Join(dir, "unlisted", "pkg", "Manifest"), []byte(FormatDistLine(distOf("unlisted.tar", []byte("u")))+"\n"), 0o644)
	f, _ := os.OpenFile(filepath.Join(dir, "cat-a02", "pkg007", "Manifest"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("garbage line\n")
	f.Close()

	x, err := BuildDistIndex(context.Background(), dir, IndexOptions{Workers: 4})
	if err != nil {
		t.Fatal(err)
	}
	s := x.Stats()
	if s.Packages != 300 || s.Dists != 900 || x.Len() != 900 || s.BadLines != 1 || s.Conflicts != 0 || s.Unreadable != 0 {
		t.Errorf("stats = %+v", s)
	}
	for name, want := range all {
		got, ok := x.Lookup(name)
		if !ok || !sameDist(got, want) {
			t.Fatalf("Lookup(%s) = %+v, %v", name, got, ok)
		}
		if err := VerifyReader(bytes.NewReader(distContent(name)), got); err != nil {
			t.Fatalf("generated content does not verify: %v", err)
		}
	}
	if _, ok := x.Lookup("unlisted.tar"); ok {
		t.Error("unlisted category indexed although profiles/categories exists")
	}
	if _, ok := x.Lookup("nope.tar.gz"); ok {
		t.Error("unknown name found")
	}
	names := x.Names()
	if len(names) != 900 || names[0] > names[1] {
		t.Errorf("Names: %d, sorted=%v", len(names), names[0] < names[1])
	}

	// ForPackage: own DIST entries in Manifest order, plus the shared one.
	ds, err := x.ForPackage("cat-a03/pkg010")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range ds {
		got = append(got, d.Name)
	}
	want := "cat-a03-a-10-0.tar.gz cat-a03-a-10-1.tar.gz cat-a03-a-10-2.tar.gz cat-a03-a-9-0.tar.gz"
	if strings.Join(got, " ") != want {
		t.Errorf("ForPackage = %s, want %s", strings.Join(got, " "), want)
	}
	if ds, err := x.ForPackage("cat-a01/no-distfiles"); err != nil || len(ds) != 0 {
		t.Errorf("package without Manifest: %v, %v", ds, err)
	}
	if _, err := x.ForPackage("cat-a01/missing"); !errors.Is(err, ErrNoPackage) {
		t.Errorf("missing package: %v", err)
	}
	for _, bad := range []string{"nocat", "a/b/c", "../x", "cat/..", "/pkg", ""} {
		if _, err := x.ForPackage(bad); err == nil {
			t.Errorf("ForPackage(%q) accepted", bad)
		}
	}
}

func TestDistIndexWithoutCategoriesFile(t *testing.T) {
	dir := t.TempDir()
	all := genTree(t, dir, "b", 2, 3, 2, true)
	os.Remove(filepath.Join(dir, "profiles", "categories"))
	// metadata/ is not a category even with Manifests below it.
	os.MkdirAll(filepath.Join(dir, "metadata", "glsa"), 0o755)
	os.WriteFile(filepath.Join(dir, "metadata", "glsa", "Manifest"), []byte(FormatDistLine(distOf("glsa.tar", nil))+"\n"), 0o644)
	x, err := BuildDistIndex(context.Background(), dir, IndexOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if x.Len() != len(all) {
		t.Errorf("Len = %d, want %d", x.Len(), len(all))
	}
	if x.Has("glsa.tar") {
		t.Error("metadata/ indexed as a category")
	}
}

func TestDistIndexConflictsAndErrors(t *testing.T) {
	dir := t.TempDir()
	a := distOf("same.tar.gz", []byte("first"))
	b := distOf("same.tar.gz", []byte("other"))
	for i, d := range []Dist{a, b} {
		p := filepath.Join(dir, "app-misc", fmt.Sprintf("p%d", i))
		os.MkdirAll(p, 0o755)
		os.WriteFile(filepath.Join(p, "Manifest"), []byte(FormatDistLine(d)+"\n"), 0o644)
	}
	// A Manifest that is a directory cannot be read.
	os.MkdirAll(filepath.Join(dir, "app-misc", "p2", "Manifest"), 0o755)
	x, err := BuildDistIndex(context.Background(), dir, IndexOptions{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if s := x.Stats(); s.Conflicts != 1 || s.Unreadable != 1 || s.Packages != 2 {
		t.Errorf("stats = %+v", s)
	}
	if d, _ := x.Lookup("same.tar.gz"); d.Size != 5 {
		t.Errorf("kept %+v", d)
	}

	if _, err := BuildDistIndex(context.Background(), filepath.Join(dir, "missing"), IndexOptions{}); err == nil {
		t.Error("missing root indexed")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := BuildDistIndex(ctx, dir, IndexOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled build: %v", err)
	}
}

// swapSymlink points link at target atomically (new link, rename).
func swapSymlink(t *testing.T, target, link string) {
	t.Helper()
	tmp := link + ".new"
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
}

func TestTreeIndexFollowsSymlinkSwap(t *testing.T) {
	base := t.TempDir()
	snapA := filepath.Join(base, "snapshots", "a")
	snapB := filepath.Join(base, "snapshots", "b")
	allA := genTree(t, snapA, "a", 2, 5, 2, true)
	allB := genTree(t, snapB, "b", 2, 5, 2, true)
	cur := filepath.Join(base, "current")
	swapSymlink(t, "snapshots/a", cur)

	ti := NewTreeIndex(cur, TreeIndexOptions{CheckInterval: 20 * time.Millisecond})
	if _, ok := ti.Lookup(firstKey(allA)); ok {
		t.Fatal("lookup answered before any build")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ti.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	x, err := ti.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if x.Root() != snapA {
		t.Errorf("root = %s, want %s", x.Root(), snapA)
	}
	for n, d := range allA {
		if got, ok := ti.Lookup(n); !ok || !sameDist(got, d) {
			t.Fatalf("Lookup(%s) before swap = %v", n, ok)
		}
	}

	swapSymlink(t, "snapshots/b", cur)
	nameB := firstKey(allB)
	deadline := time.Now().Add(30 * time.Second)
	for !ti.Current().Has(nameB) {
		if time.Now().After(deadline) {
			t.Fatal("index did not follow the symlink swap within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ti.Current().Root() != snapB {
		t.Errorf("root after swap = %s", ti.Current().Root())
	}
	if _, ok := ti.Lookup(firstKey(allA)); ok {
		t.Error("old snapshot's names still indexed after the swap")
	}
	// No change: no rebuild.
	if rebuilt, err := ti.Refresh(ctx); rebuilt || err != nil {
		t.Errorf("Refresh without change = %v, %v", rebuilt, err)
	}
}

func firstKey(m map[string]Dist) string {
	for k := range m {
		return k
	}
	return ""
}

func TestTreeIndexPlainDirTimestamp(t *testing.T) {
	dir := t.TempDir()
	genTree(t, dir, "a", 1, 2, 1, true)
	ti := NewTreeIndex(dir, TreeIndexOptions{})
	ctx := context.Background()
	if rebuilt, err := ti.Refresh(ctx); !rebuilt || err != nil {
		t.Fatalf("first Refresh = %v, %v", rebuilt, err)
	}
	// An in-place sync adds a package and rewrites timestamp.chk.
	d := distOf("new-1.tar.gz", []byte("new"))
	os.MkdirAll(filepath.Join(dir, "cat-a00", "new"), 0o755)
	os.WriteFile(filepath.Join(dir, "cat-a00", "new", "Manifest"), []byte(FormatDistLine(d)+"\n"), 0o644)
	if rebuilt, _ := ti.Refresh(ctx); rebuilt {
		t.Error("rebuilt although timestamp.chk did not change")
	}
	ts := filepath.Join(dir, "metadata", "timestamp.chk")
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(ts, later, later); err != nil {
		t.Fatal(err)
	}
	if rebuilt, err := ti.Refresh(ctx); !rebuilt || err != nil {
		t.Fatalf("Refresh after timestamp change = %v, %v", rebuilt, err)
	}
	if _, ok := ti.Lookup("new-1.tar.gz"); !ok {
		t.Error("new package not indexed")
	}

	// A tree without a timestamp file is rebuilt after RebuildInterval.
	os.Remove(ts)
	ti2 := NewTreeIndex(dir, TreeIndexOptions{RebuildInterval: time.Nanosecond})
	ti2.Refresh(ctx)
	if rebuilt, _ := ti2.Refresh(ctx); !rebuilt {
		t.Error("tree without timestamp not rebuilt after RebuildInterval")
	}
}

func TestTreeIndexMissingTree(t *testing.T) {
	ti := NewTreeIndex(filepath.Join(t.TempDir(), "nothing"), TreeIndexOptions{CheckInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ti.Run(ctx); close(done) }()
	select {
	case <-ti.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("Ready not closed after a failed build")
	}
	if _, ok := ti.Lookup("x"); ok {
		t.Error("lookup without tree found something")
	}
	if _, err := ti.Wait(ctx); err == nil {
		t.Error("Wait without tree: no error")
	}
	cancel()
	<-done
}

// BenchmarkBuildDistIndex builds the index of a generated tree the size of
// the gentoo repository (about 19,000 packages, 4 DIST entries each).
// The tree is generated once per run, in the benchmark's temp dir.
func BenchmarkBuildDistIndex(b *testing.B) {
	dir := b.TempDir()
	genTree(b, dir, "x", 170, 112, 4, false) // 19,040 packages
	var x *DistIndex
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for b.Loop() {
		var err error
		x, err = BuildDistIndex(context.Background(), dir, IndexOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if x.Stats().Packages != 170*112 {
			b.Fatalf("stats %+v", x.Stats())
		}
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(x.Len()), "distfiles")
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20), "MiB-retained")
	runtime.KeepAlive(x)
}

// TestTreeIndexWaitIndexed: WaitIndexed blocks until the first build;
// while the tree does not exist it waits (a first pull may publish it)
// and Run finds the tree within a second of its appearance; a tree that
// cannot be read fails at once with the reason.
func TestTreeIndexWaitIndexed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tree")
	ti := NewTreeIndex(dir, TreeIndexOptions{CheckInterval: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	if err := ti.WaitIndexed(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("before any build: %v", err)
	}
	cancelShort()
	done := make(chan struct{})
	runCtx, stop := context.WithCancel(ctx)
	go func() { ti.Run(runCtx); close(done) }()
	defer func() { stop(); <-done }()
	<-ti.Ready()
	short, cancelShort = context.WithTimeout(ctx, 100*time.Millisecond)
	err := ti.WaitIndexed(short)
	cancelShort()
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("missing tree: %v, want a timeout naming the missing tree", err)
	}
	genTree(t, dir+".new", "w", 2, 3, 2, true)
	go func() {
		time.Sleep(200 * time.Millisecond)
		os.Rename(dir+".new", dir)
	}()
	if err := ti.WaitIndexed(ctx); err != nil {
		t.Fatalf("tree published later: %v", err)
	}

	// A tree that is no directory: at once.
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, []byte("x"), 0o644)
	ti2 := NewTreeIndex(file, TreeIndexOptions{CheckInterval: time.Hour})
	if _, err := ti2.Refresh(ctx); err == nil {
		t.Fatal("a file indexed as a tree")
	}
	if err := ti2.WaitIndexed(ctx); err == nil || !strings.Contains(err.Error(), "could not be built") {
		t.Fatalf("unreadable tree: %v", err)
	}
}
