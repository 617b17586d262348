package sender

import (
	"bytes"
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

// TestOpenerFifo: a listed file replaced by a fifo is refused at once
// instead of blocking the session until a writer appears.
func TestOpenerFifo(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	o := newOpener(root)
	defer o.close()
	done := make(chan error, 1)
	go func() {
		var f srcFile
		err := o.open("fifo", &f)
		if err == nil {
			f.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, errNotRegular) {
			t.Errorf("fifo: %v, want %v", err, errNotRegular)
		}
	case <-time.After(10 * time.Second):
		// Unblock the open so the goroutine ends.
		if w, err := os.OpenFile(filepath.Join(dir, "fifo"), os.O_WRONLY, 0); err == nil {
			w.Close()
		}
		t.Fatal("opening a fifo blocked")
	}
}

// openFDs counts the process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("listing descriptors: %v", err)
	}
	return len(ents)
}

// TestOpenerOrderAndDescriptors: each path gets its own file whatever
// the order of the paths (directories changing, coming back, nested, at
// the top: the file list's order, and out of it), so any per-directory
// state in the opener must follow; symlinks inside the module leaving
// their directory are served (through the Root if need be), those
// leaving the module are refused; opening holds no descriptor per file
// and none is left after close.
func TestOpenerOrderAndDescriptors(t *testing.T) {
	base := t.TempDir()
	mod := filepath.Join(base, "mod")
	if err := os.WriteFile(filepath.Join(base, "secret"), []byte("outside"), 0o644); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"a/x": "ax", "a/y": "ay", "a/w": "aw", "b/z": "bz", "b/c/v": "bcv",
		"top": "top", "b/x": "bx",
	}
	for p, data := range files {
		full := filepath.Join(mod, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	root := linkedRoot(t, mod, map[string]string{
		"a/sib":    "../b/z",       // inside the module, outside a/
		"a/deep":   "../b/c/v",     // same, two levels
		"b/c/up":   "../../a/x",    // same, back to a cached sibling
		"a/out":    "../../secret", // outside the module
		"b/abs":    filepath.Join(base, "secret"),
		"b/c/loop": "loop",
	})

	before := openFDs(t)
	o := newOpener(root)
	if _, err := readAll(t, o, "a/x"); err != nil {
		t.Fatal(err)
	}
	held := openFDs(t) // the opener's own descriptors, after one open
	order := []struct{ path, want string }{
		{"a/x", "ax"}, {"a/y", "ay"}, {"b/z", "bz"}, {"a/w", "aw"}, // out of order
		{"a/sib", "bz"}, {"a/x", "ax"}, {"a/deep", "bcv"}, {"b/c/v", "bcv"},
		{"b/c/up", "ax"}, {"b/c/v", "bcv"}, {"top", "top"}, {"a/y", "ay"},
		{"b/x", "bx"}, {"b/z", "bz"}, {"b/c/v", "bcv"}, {"b/x", "bx"},
		{"a/../b/x", "bx"}, {"a//y", "ay"}, {"top", "top"},
	}
	for _, tc := range order {
		got, err := readAll(t, o, tc.path)
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: read %q, %v; want %q", tc.path, got, err, tc.want)
		}
	}
	for _, p := range []string{"a/out", "b/abs", "a/../../secret", "b/c/../../../secret"} {
		if got, err := readAll(t, o, p); err == nil {
			t.Errorf("%s: read %q, want an error (outside the module)", p, got)
		}
		// The cache still serves the right files afterwards.
		if got, err := readAll(t, o, "a/w"); err != nil || string(got) != "aw" {
			t.Errorf("a/w after %s: read %q, %v", p, got, err)
		}
	}
	if _, err := readAll(t, o, "b/c/loop"); err == nil {
		t.Error("b/c/loop: a symlink loop opened")
	}
	if _, err := readAll(t, o, "a/missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a/missing: %v, want not-exist", err)
	}
	if _, err := readAll(t, o, "nodir/x"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("nodir/x: %v, want not-exist", err)
	}
	if _, err := readAll(t, o, "b/c"); !errors.Is(err, errNotRegular) {
		t.Errorf("b/c: %v, want %v", err, errNotRegular)
	}

	// A directory replaced by another between two of its files: the
	// cached descriptor still names the directory opened first (as a
	// chdir would), and the next directory change picks up the new one.
	if err := os.Rename(filepath.Join(mod, "a"), filepath.Join(mod, "a.old")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(mod, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mod, "a", "x"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := readAll(t, o, "b/x"); err != nil || string(got) != "bx" {
		t.Errorf("b/x: read %q, %v", got, err)
	}
	if got, err := readAll(t, o, "a/x"); err != nil || string(got) != "new" {
		t.Errorf("a/x after replacing a: read %q, %v; want %q", got, err, "new")
	}

	if n := openFDs(t); n != held {
		t.Errorf("%d descriptors open after all the opens, want %d as after the first", n, held)
	}
	o.close()
	if n := openFDs(t); n != before {
		t.Errorf("%d descriptors open after close, want %d as before", n, before)
	}
	// After close, opens go through the Root and still work.
	if got, err := readAll(t, o, "b/c/v"); err != nil || string(got) != "bcv" {
		t.Errorf("b/c/v after close: read %q, %v", got, err)
	}
	if n := openFDs(t); n != before {
		t.Errorf("%d descriptors open after a Root open, want %d", n, before)
	}
}

// TestOpenerListed: a file opened with its listed size reads as it is on
// disk whether the list is right or not (grown, shrunk, emptied, bigger
// than the whole-read buffer); a small file whose size matches holds no
// descriptor once opened; fifos (with or without a writer) and
// directories are refused as not regular without blocking; missing
// files and symlinks leaving the module are refused as by open.
func TestOpenerListed(t *testing.T) {
	base := t.TempDir()
	mod := filepath.Join(base, "mod")
	if err := os.WriteFile(filepath.Join(base, "secret"), []byte("outside"), 0o644); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), smallMax/16+100)
	files := map[string][]byte{
		"a/f": []byte("ebuild text"), "a/empty": nil, "a/big": big,
		"a/edge": bytes.Repeat([]byte("x"), smallMax), "a/d/x": []byte("x"),
	}
	for p, data := range files {
		full := filepath.Join(mod, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"fifo", "wfifo"} {
		if err := syscall.Mkfifo(filepath.Join(mod, "a", name), 0o644); err != nil {
			t.Fatalf("mkfifo: %v", err)
		}
	}
	root := linkedRoot(t, mod, map[string]string{"a/out": "../../secret", "a/in": "f"})
	o := newOpener(root)
	defer o.close()

	for _, tc := range []struct {
		path string
		size int64 // as listed
	}{
		{"a/f", 11}, {"a/f", 5}, {"a/f", 40}, {"a/f", 0}, {"a/f", -1},
		{"a/empty", 0}, {"a/empty", 3}, {"a/big", int64(len(big))}, {"a/big", 10},
		{"a/edge", smallMax}, {"a/edge", smallMax - 1}, {"a/in", 11},
	} {
		got, err := readListed(t, o, tc.path, tc.size)
		want := files[strings.Replace(tc.path, "a/in", "a/f", 1)]
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s listed as %d bytes: read %d bytes, %v; want %d", tc.path, tc.size, len(got), err, len(want))
		}
	}

	// A small file read whole holds no descriptor once opened, and its
	// contents stay as they were at open.
	before := openFDs(t)
	var f srcFile
	if err := o.openListed("a/f", 11, &f); err != nil {
		t.Fatal(err)
	}
	if n := openFDs(t); n != before {
		t.Errorf("%d descriptors open with a small file open, want %d", n, before)
	}
	if err := os.Truncate(filepath.Join(mod, "a", "f"), 2); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(&f)
	f.Close()
	if err != nil || string(got) != "ebuild text" {
		t.Errorf("small file truncated after open: read %q, %v; want its contents at open", got, err)
	}
	if n := openFDs(t); n != before {
		t.Errorf("%d descriptors open after close, want %d", n, before)
	}

	// A fifo with a writer: the non-blocking read finds nothing yet.
	w, err := os.OpenFile(filepath.Join(mod, "a", "wfifo"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, tc := range []struct {
		path string
		size int64
	}{{"a/fifo", 10}, {"a/fifo", 0}, {"a/wfifo", 10}, {"a/wfifo", 0}, {"a/d", 10}, {"a/d", 0}} {
		done := make(chan error, 1)
		go func() {
			_, err := readListed(t, o, tc.path, tc.size)
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, errNotRegular) {
				t.Errorf("%s listed as %d bytes: %v, want %v", tc.path, tc.size, err, errNotRegular)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s listed as %d bytes: open blocked", tc.path, tc.size)
		}
	}
	w.Close()
	if _, err := readListed(t, o, "a/missing", 3); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a/missing: %v, want not-exist", err)
	}
	if got, err := readListed(t, o, "a/out", 7); err == nil {
		t.Errorf("a/out: read %q, want an error (outside the module)", got)
	}
	if n := openFDs(t); n != before {
		t.Errorf("%d descriptors open at the end, want %d", n, before)
	}
}
