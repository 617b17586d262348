package distcache

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// hit asks the cache for name and wants a hit with data; it reports
// whether the Body served from memory, and returns its ETag.
func hit(t *testing.T, c *Cache, name string, data []byte) (inMemory bool, etag string) {
	t.Helper()
	b, out, err := c.Distfile(testCtx(t), name)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if out != Hit {
		t.Fatalf("%s: outcome %s, want HIT", name, out)
	}
	got, err := readAll(t, b, 0)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("%s: %v, %d bytes read, want %d", name, err, len(got), len(data))
	}
	tail, err := readAll(t, b, int64(len(data)/2))
	if err != nil || !bytes.Equal(tail, data[len(data)/2:]) {
		t.Fatalf("%s from the middle: %v, %d bytes", name, err, len(tail))
	}
	mem, ok := b.Bytes()
	if ok && !bytes.Equal(mem, data) {
		t.Fatalf("%s: Bytes() differs from the file", name)
	}
	if b.Size() != int64(len(data)) {
		t.Fatalf("%s: size %d", name, b.Size())
	}
	return ok, b.ETag()
}

// putFile writes a distfile into the store directory behind the cache's
// back (as another process would), through a rename.
func putFile(t *testing.T, c *Cache, name string, data []byte) {
	t.Helper()
	dir := filepath.Join(c.store.Dir(), "distfiles")
	tmp := filepath.Join(dir, ".tmp-"+name)
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// TestSmallFilesInMemory: a small distfile is served from memory from the
// second request on, with the same bytes and ETag as from the file; a
// large one keeps the file path (sendfile); the store's own changes
// (Remove, a new commit) drop the copy at once.
func TestSmallFilesInMemory(t *testing.T) {
	c := newTestCache(t, "", Options{})
	small, large := testData(40<<10, 1), testData(DefaultSmallFileMax+1, 2)
	putFile(t, c, "small.tar.gz", small)
	putFile(t, c, "large.tar.gz", large)

	mem, tagFile := hit(t, c, "small.tar.gz", small)
	if !mem {
		t.Error("first hit of a small file not kept in memory")
	}
	mem, tagMem := hit(t, c, "small.tar.gz", small)
	if !mem {
		t.Error("second hit of a small file not served from memory")
	}
	if tagMem != tagFile || tagMem == "" {
		t.Errorf("ETag from memory %s, from the file %s", tagMem, tagFile)
	}
	if n, total := c.store.SmallFiles(); n != 1 || total != int64(len(small)) {
		t.Errorf("%d files, %d bytes in memory, want 1 and %d", n, total, len(small))
	}
	for range 2 {
		if mem, _ := hit(t, c, "large.tar.gz", large); mem {
			t.Error("a file above the limit is served from memory")
		}
	}
	b, _, err := c.Distfile(testCtx(t), "large.tar.gz")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := b.NewReader(0).(syscall.Conn); !ok {
		t.Error("large file reader is not a syscall.Conn (no sendfile)")
	}
	b.Close()

	// Remove: gone from memory too.
	if err := c.store.Remove("distfiles/small.tar.gz"); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.store.SmallFiles(); n != 0 {
		t.Errorf("%d files in memory after Remove", n)
	}
	if _, out, err := c.Distfile(testCtx(t), "small.tar.gz"); err == nil || out == Hit {
		t.Errorf("removed file: outcome %q, error %v (no mirror: want an error)", out, err)
	}

	// A new object committed under the name replaces the copy.
	hit(t, c, "large.tar.gz", large)
	other := testData(1000, 9)
	src := filepath.Join(t.TempDir(), "other")
	os.WriteFile(src, other, 0o644)
	putFile(t, c, "s2", small)
	hit(t, c, "s2", small)
	if err := c.store.Add("distfiles/s2", src, false); err != nil {
		t.Fatal(err)
	}
	if mem, _ := hit(t, c, "s2", other); !mem {
		t.Error("the new file is not kept in memory")
	}
}

// TestSmallFilesOtherProcess: a file replaced or removed by another
// process sharing the data directory (no Store call here) is noticed at
// the next identity check.
func TestSmallFilesOtherProcess(t *testing.T) {
	c := newTestCache(t, "", Options{})
	c.store.small.recheck = 0 // check at every request
	a, b := testData(5000, 3), testData(6000, 4)
	putFile(t, c, "f.patch", a)
	hit(t, c, "f.patch", a)
	if mem, _ := hit(t, c, "f.patch", a); !mem {
		t.Fatal("not served from memory")
	}
	putFile(t, c, "f.patch", b)
	hit(t, c, "f.patch", b) // the new content, not the copy
	if err := os.Remove(filepath.Join(c.store.Dir(), "distfiles", "f.patch")); err != nil {
		t.Fatal(err)
	}
	if _, out, err := c.Distfile(testCtx(t), "f.patch"); err == nil || out == Hit {
		t.Errorf("file removed by another process: outcome %q, error %v", out, err)
	}

	// Without the check (within the recheck interval), the copy serves.
	c.store.small.recheck = time.Hour
	putFile(t, c, "g.patch", a)
	hit(t, c, "g.patch", a)
	putFile(t, c, "g.patch", b)
	if mem, _ := hit(t, c, "g.patch", a); !mem {
		t.Error("within the recheck interval the copy in memory does not serve")
	}
}

// TestSmallFilesManifestSize: a copy in memory whose size is not the
// Manifest's is not served (the store path refetches it).
func TestSmallFilesManifestSize(t *testing.T) {
	data := testData(3000, 5)
	ver := mapVerifier{}
	c := newTestCache(t, "", Options{Verifier: ver})
	putFile(t, c, "m.tar.gz", data)
	hit(t, c, "m.tar.gz", data)
	_, tag := hit(t, c, "m.tar.gz", data)
	d := distOf("m.tar.gz", data)
	ver["m.tar.gz"] = d
	mem, mtag := hit(t, c, "m.tar.gz", data)
	if !mem || mtag == tag || mtag != manifestETag(&d) {
		t.Errorf("with a Manifest entry: in memory %v, tag %s (file tag %s)", mem, mtag, tag)
	}
	wrong := ver["m.tar.gz"]
	wrong.Size++
	ver["m.tar.gz"] = wrong
	if b, out, err := c.Distfile(testCtx(t), "m.tar.gz"); err == nil {
		b.Close()
		if out == Hit {
			t.Errorf("a copy of the wrong size for the Manifest was served")
		}
	}
}

// TestSmallFilesBound: the memory bound holds, the least recently used
// file goes first.
func TestSmallFilesBound(t *testing.T) {
	c := newTestCache(t, "", Options{})
	c.store.SetSmallFiles(10000, 25000)
	files := map[string][]byte{}
	for i, n := range []string{"a", "b", "c"} {
		files[n] = testData(9000, byte(10+i))
		putFile(t, c, n, files[n])
	}
	hit(t, c, "a", files["a"])
	hit(t, c, "b", files["b"])
	hit(t, c, "a", files["a"]) // a is now the most recent
	hit(t, c, "c", files["c"]) // evicts b
	if n, total := c.store.SmallFiles(); n != 2 || total > 25000 {
		t.Errorf("%d files, %d bytes in memory (bound 25000)", n, total)
	}
	if mem, _ := hit(t, c, "a", files["a"]); !mem {
		t.Error("the most recently used file was evicted")
	}
	c.store.SetSmallFiles(0, 0)
	putFile(t, c, "d", files["a"])
	for range 2 {
		if mem, _ := hit(t, c, "d", files["a"]); mem {
			t.Error("in memory with the cache turned off")
		}
	}
}
