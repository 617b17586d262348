package distcache

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func openTestStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := OpenStore(dir, nil)
	if err != nil {
		t.Fatalf("OpenStore: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestCheckKey(t *testing.T) {
	good := []string{"distfiles/a.tar.gz", "urls/example.org/x/y z", "binhost/amd64/Packages", "distfiles/.hidden"}
	for _, k := range good {
		if err := CheckKey(k); err != nil {
			t.Errorf("CheckKey(%q) = %v, want nil", k, err)
		}
	}
	bad := []string{"", "/etc/passwd", "distfiles/../../etc/passwd", "..", "distfiles/./a", "distfiles//a",
		"distfiles/a/", "distfiles/a\x00b", "distfiles/a\nb", `distfiles\..\x`, ".partial/x", "state/served", "state"}
	for _, k := range bad {
		if err := CheckKey(k); !errors.Is(err, ErrBadName) {
			t.Errorf("CheckKey(%q) = %v, want ErrBadName", k, err)
		}
	}
	for _, n := range []string{"a/b", "..", ".", "", "x\x00"} {
		if err := CheckName(n); !errors.Is(err, ErrBadName) {
			t.Errorf("CheckName(%q) = %v, want ErrBadName", n, err)
		}
	}
	if err := CheckName("which-2.23.tar.gz"); err != nil {
		t.Errorf("CheckName: %v", err)
	}
}

func TestStoreAddOpenRemove(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	src := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(src, []byte("hello distfile"), 0o644); err != nil {
		t.Fatal(err)
	}
	mt := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	os.Chtimes(src, mt, mt)

	if _, _, err := s.Open("distfiles/a"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open missing: %v, want ErrNotExist", err)
	}
	if err := s.Add("distfiles/a", src, false); err != nil {
		t.Fatalf("Add: %v", err)
	}
	f, fi, err := s.Open("distfiles/a")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "hello distfile" || fi.Size() != 14 || !fi.ModTime().Equal(mt) {
		t.Fatalf("Open: %q size %d mtime %v", b, fi.Size(), fi.ModTime())
	}
	if _, err := os.Stat(src); err != nil {
		t.Fatalf("source gone without move: %v", err)
	}
	// The object is at dir/distfiles/<name>, where users and import expect it.
	if b, err := os.ReadFile(filepath.Join(dir, "distfiles", "a")); err != nil || string(b) != "hello distfile" {
		t.Fatalf("object file: %q %v", b, err)
	}

	if err := s.Add("distfiles/b", src, true); err != nil {
		t.Fatalf("Add move: %v", err)
	}
	if _, err := os.Stat(src); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("source still there after move: %v", err)
	}
	if fi, err := s.Stat("distfiles/b"); err != nil || fi.Size() != 14 {
		t.Fatalf("Stat b: %v", err)
	}
	if err := s.Remove("distfiles/a"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := s.Stat("distfiles/a"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat after Remove: %v", err)
	}
	if err := s.Remove("distfiles/a"); err != nil {
		t.Fatalf("Remove twice: %v", err)
	}
	if err := s.Add("distfiles/c", filepath.Join(t.TempDir(), "missing"), false); err == nil {
		t.Fatal("Add of a missing source succeeded")
	}
	// No temporary files left behind.
	if ents, _ := os.ReadDir(filepath.Join(dir, filepath.FromSlash(s.partial))); len(ents) != 0 {
		t.Fatalf(".partial not empty: %v", ents)
	}
}

// TestStoreAddCopy covers the copy path that Add takes when a hard link is
// impossible (another file system), by calling it directly.
func TestStoreAddCopy(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	src := filepath.Join(t.TempDir(), "src")
	data := make([]byte, 600<<10)
	for i := range data {
		data[i] = byte(i * 7)
	}
	os.WriteFile(src, data, 0o644)
	fi, _ := os.Stat(src)
	tmp := s.tempName()
	if err := s.copyIn(src, tmp, fi); err != nil {
		t.Fatalf("copyIn: %v", err)
	}
	if err := s.commit(tmp, "distfiles/copied"); err != nil {
		t.Fatalf("commit: %v", err)
	}
	f, _, err := s.Open("distfiles/copied")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, _ := io.ReadAll(f)
	if string(got) != string(data) {
		t.Fatal("copied bytes differ")
	}
}

func TestStoreTraversal(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o644)
	s := openTestStore(t, dir)
	// A symlink planted inside the store that points outside must not be
	// followed out of the data directory.
	if err := os.Symlink(outside, filepath.Join(dir, "distfiles", "evil")); err != nil {
		t.Fatal(err)
	}
	if f, _, err := s.Open("distfiles/evil/secret"); err == nil {
		f.Close()
		t.Fatal("Open followed a symlink out of the store")
	}
	for _, k := range []string{"../x", "distfiles/../../x", "/etc/passwd"} {
		if _, _, err := s.Open(k); !errors.Is(err, ErrBadName) {
			t.Errorf("Open(%q) = %v, want ErrBadName", k, err)
		}
		if err := s.Remove(k); !errors.Is(err, ErrBadName) {
			t.Errorf("Remove(%q) = %v, want ErrBadName", k, err)
		}
	}
	if _, _, err := s.Open("distfiles"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(directory) = %v, want ErrNotExist", err)
	}
}

func TestStoreEntriesAndServed(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "src")
	os.WriteFile(src, []byte("12345"), 0o644)
	for _, k := range []string{"distfiles/b", "distfiles/a", "urls/example.org/x/y", "binhost/Packages"} {
		if err := s.Add(k, src, false); err != nil {
			t.Fatal(err)
		}
	}
	before := time.Now()
	s.MarkServed("distfiles/b")
	ents, err := s.Entries(DistfilesPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 2 || ents[0].Key != "distfiles/a" || ents[0].Name != "a" || ents[1].Name != "b" || ents[0].Size != 5 {
		t.Fatalf("Entries = %+v", ents)
	}
	if !ents[0].LastServed.IsZero() || ents[1].LastServed.Before(before) {
		t.Fatalf("LastServed: %+v", ents)
	}
	os.MkdirAll(filepath.Join(dir, "tree", "snapshots", "1"), 0o755)
	os.WriteFile(filepath.Join(dir, "tree", "snapshots", "1", "Manifest"), []byte("x"), 0o644)
	all, err := s.Entries("")
	if err != nil || len(all) != 4 {
		t.Fatalf("Entries(\"\") = %+v, %v", all, err)
	}
	if u, err := s.Entries(URLsPrefix); err != nil || len(u) != 1 || u[0].Name != "example.org/x/y" {
		t.Fatalf("Entries(urls) = %+v, %v", u, err)
	}
	if u, err := s.Entries("nothing/"); err != nil || len(u) != 0 {
		t.Fatalf("Entries(nothing) = %+v, %v", u, err)
	}
	served := ents[1].LastServed
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The served time survives a restart.
	s2 := openTestStore(t, dir)
	ents, err = s2.Entries(DistfilesPrefix)
	if err != nil || len(ents) != 2 {
		t.Fatal(err)
	}
	if !ents[1].LastServed.Equal(served) {
		t.Fatalf("LastServed after reopen = %v, want %v", ents[1].LastServed, served)
	}
	// Remove forgets the served time.
	s2.Remove("distfiles/b")
	if !s2.served.get("distfiles/b").IsZero() {
		t.Fatal("served time kept after Remove")
	}
}

func TestStoreInterruptedDownloadRemoved(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, name, err := s.createTemp()
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("half a file"))
	f.Close()
	// Another process opening the store meanwhile leaves the live
	// download alone.
	other := openTestStore(t, dir)
	if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(name))); err != nil {
		t.Fatalf("a live download of another process was removed: %v", err)
	}
	// kill -9: the store is dropped without the download finishing.
	simulateKill(s)
	s2 := openTestStore(t, dir)
	if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(name))); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("leftover %s survived reopen: %v", name, err)
	}
	ents, err := s2.Entries("")
	if err != nil || len(ents) != 0 {
		t.Fatalf("Entries after reopen = %+v, %v", ents, err)
	}
	// Closing removes the process's own directory.
	own := filepath.Join(dir, filepath.FromSlash(other.partial))
	other.Close()
	if _, err := os.Stat(own); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("closed store left %s: %v", own, err)
	}
}

// TestStoredReaders: a stored object's first reader can be sent with
// sendfile (syscall.Conn); other readers read at offsets of their own;
// readers outlive their Body; a Body used after Close fails.
func TestStoredReaders(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	data := testData(10000, 50)
	src := filepath.Join(t.TempDir(), "src")
	os.WriteFile(src, data, 0o644)
	if err := s.Add("distfiles/r", src, false); err != nil {
		t.Fatal(err)
	}
	f, fi, err := s.Open("distfiles/r")
	if err != nil {
		t.Fatal(err)
	}
	b := storedBody("distfiles/r", f, fi, "", "")
	r1 := b.NewReader(100)
	if _, ok := r1.(syscall.Conn); !ok {
		t.Errorf("first reader is %T, not a syscall.Conn (no sendfile)", r1)
	}
	r3 := b.NewReader(300) // a second reader has offsets of its own
	r2 := &storedReader{file: b.file.acquire(), off: 200, size: b.size}
	b.Close()
	got3, err3 := io.ReadAll(r3)
	got1, err1 := io.ReadAll(r1)
	got2, err2 := io.ReadAll(r2)
	r1.Close()
	r2.Close()
	r3.Close()
	if err1 != nil || err2 != nil || err3 != nil || string(got1) != string(data[100:]) ||
		string(got2) != string(data[200:]) || string(got3) != string(data[300:]) {
		t.Fatalf("readers: %v %v %v, %d, %d and %d bytes", err1, err2, err3, len(got1), len(got2), len(got3))
	}
	if _, err := b.NewReader(0).Read(make([]byte, 1)); err == nil {
		t.Fatal("NewReader after Close worked")
	}
	if _, err := r2.Read(make([]byte, 1)); err == nil {
		t.Fatal("closed reader worked")
	}
}

// TestServedSharedByProcesses: two stores on one data directory (the
// daemon and a command) keep each other's served times, and a removal
// is not undone by the other's records.
func TestServedSharedByProcesses(t *testing.T) {
	dir := t.TempDir()
	a := openTestStore(t, dir)
	b := openTestStore(t, dir)
	src := filepath.Join(t.TempDir(), "src")
	os.WriteFile(src, []byte("x"), 0o644)
	for _, k := range []string{"distfiles/a", "distfiles/b", "distfiles/gone"} {
		a.Add(k, src, false)
	}
	a.MarkServed("distfiles/a")
	a.MarkServed("distfiles/gone")
	if err := a.served.flush(a); err != nil {
		t.Fatal(err)
	}
	b.MarkServed("distfiles/b")
	if err := b.Remove("distfiles/gone"); err != nil {
		t.Fatal(err)
	}
	if err := b.served.flush(b); err != nil {
		t.Fatal(err)
	}
	c := openTestStore(t, dir)
	if c.served.get("distfiles/a").IsZero() || c.served.get("distfiles/b").IsZero() {
		t.Fatal("served time of one process lost")
	}
	if !c.served.get("distfiles/gone").IsZero() {
		t.Fatal("removed key came back")
	}
}

// TestStoreSymlinkedDir: a symlinked distfiles directory is refused with
// a clear error (all access stays inside the data directory).
func TestStoreSymlinkedDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink(t.TempDir(), filepath.Join(dir, "distfiles")); err != nil {
		t.Fatal(err)
	}
	_, err := OpenStore(dir, nil)
	if err == nil || !strings.Contains(err.Error(), "is a symlink") || !strings.Contains(err.Error(), "bind mount") {
		t.Fatalf("OpenStore = %v", err)
	}
}
