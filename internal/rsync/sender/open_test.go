package sender

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/lanmirror/lanmirror/internal/rsync/checksum"
	"github.com/lanmirror/lanmirror/internal/rsync/opts"
	"github.com/lanmirror/lanmirror/internal/rsync/wire"
)

// readAll opens path with o and returns its contents.
func readAll(t *testing.T, o *opener, path string) ([]byte, error) {
	t.Helper()
	return readListed(t, o, path, -1)
}

// readListed opens path with o.openListed (size as in the file list; -1:
// unknown, as open) and returns its contents.
func readListed(t *testing.T, o *opener, path string, size int64) ([]byte, error) {
	t.Helper()
	var f srcFile
	if err := o.openListed(path, size, &f); err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(&f)
}

// TestOpenerConfined: files open as through the Root: nested paths and
// symlinks inside the module work, symlinks leaving it, missing files
// and directories are refused with the Root's errors.
func TestOpenerConfined(t *testing.T) {
	base := t.TempDir()
	mod := filepath.Join(base, "mod")
	secret := filepath.Join(base, "secret")
	if err := os.WriteFile(secret, []byte("outside"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(mod, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte("ebuild "), 1000)
	if err := os.WriteFile(filepath.Join(mod, "a", "b", "f.ebuild"), want, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mod, "empty"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	root := linkedRoot(t, mod, map[string]string{
		"a/in":     "b/f.ebuild",
		"a/up":     "../empty",
		"a/abs":    secret,
		"a/escape": "../../secret",
		"a/b/dir":  "..",
	})
	o := newOpener(root)
	defer o.close()

	for _, tc := range []struct {
		path string
		want []byte
	}{{"a/b/f.ebuild", want}, {"a/in", want}, {"empty", nil}, {"a/up", nil}, {"a/b/dir/b/f.ebuild", want}} {
		got, err := readAll(t, o, tc.path)
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("%s: got %d bytes, %v; want %d bytes", tc.path, len(got), err, len(tc.want))
		}
	}
	for _, p := range []string{"a/abs", "a/escape", "../secret", "/etc/passwd", "a/../../secret"} {
		if got, err := readAll(t, o, p); err == nil {
			t.Errorf("%s: read %q, want an error (outside the module)", p, got)
		}
		if _, rerr := root.Open(p); rerr == nil {
			t.Errorf("%s: the Root opens it", p)
		}
	}
	if _, err := readAll(t, o, "a/missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want not-exist", err)
	}
	if _, err := readAll(t, o, "a/b"); !errors.Is(err, errNotRegular) {
		t.Errorf("directory: %v, want %v", err, errNotRegular)
	}
}

// TestOpenerSizeAtOpen: a file that grows while it is sent is read up to
// the size it had when opened (as stock rsync maps st_size bytes); one
// that shrinks ends early.
func TestOpenerSizeAtOpen(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	o := newOpener(root)
	defer o.close()
	var f srcFile
	if err := o.open("f", &f); err != nil {
		t.Fatal(err)
	}
	af, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := af.WriteString("appended"); err != nil {
		t.Fatal(err)
	}
	af.Close()
	got, err := io.ReadAll(&f)
	f.Close()
	if err != nil || string(got) != "0123456789" {
		t.Errorf("grown file: read %q, %v; want the 10 bytes it had", got, err)
	}

	if err := o.open("f", &f); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 4); err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(&f)
	f.Close()
	if err != nil || string(got) != "0123" {
		t.Errorf("shrunk file: read %q, %v; want %q", got, err, "0123")
	}
}

// benchTree writes n files of size bytes in a Portage-like layout
// (category/package/file) and returns the module-relative paths.
func benchTree(b *testing.B, dir string, n, size int) []string {
	b.Helper()
	data := bytes.Repeat([]byte("# Copyright Gentoo Authors\nEAPI=8\n"), size/34+1)[:size]
	paths := make([]string, n)
	for i := range paths {
		paths[i] = fmt.Sprintf("cat-%d/pkg-%d/pkg-%d.ebuild", i%20, i%200, i)
		full := filepath.Join(dir, filepath.FromSlash(paths[i]))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return paths
}

// BenchmarkOpen compares opening (and reading) a small source file
// through the Root (one openat per path component) with the opener.
func BenchmarkOpen(b *testing.B) {
	dir := b.TempDir()
	paths := benchTree(b, dir, 500, 1500)
	root, err := os.OpenRoot(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer root.Close()
	buf := make([]byte, 32*1024)
	read := func(b *testing.B, open func(string, *srcFile) error) {
		var f srcFile
		for i := 0; b.Loop(); i++ {
			if err := open(paths[i%len(paths)], &f); err != nil {
				b.Fatal(err)
			}
			if _, err := readFull(&f, buf); err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
	}
	b.Run("root", func(b *testing.B) {
		read(b, func(p string, f *srcFile) error { return openRoot(root, p, f) })
	})
	b.Run("opener", func(b *testing.B) {
		o := newOpener(root)
		defer o.close()
		read(b, o.open)
	})
}

// BenchmarkSendOne measures the sender's per-file work for a whole-file
// transfer of small files (Portage's --whole-file): open, read, tokens,
// whole-file checksum, into a discarding multiplexed stream.
func BenchmarkSendOne(b *testing.B) {
	dir := b.TempDir()
	paths := benchTree(b, dir, 500, 1500)
	root, err := os.OpenRoot(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer root.Close()
	for _, comp := range []string{"", "lz4", "zstd", "zlib"} {
		name := comp
		if name == "" {
			name = "none"
		}
		b.Run(name, func(b *testing.B) {
			s := &session{cfg: Config{Protocol: 31, Root: root, ModuleName: "mod"}, o: &opts.Options{},
				log: slog.New(slog.NewTextHandler(io.Discard, nil)), compress: comp,
				out: wire.NewMuxWriter(io.Discard), strong: checksum.Strong{Kind: checksum.XXH128}}
			codec := wire.NewNdxCodec(31)
			for i := 0; b.Loop(); i++ {
				k := i % len(paths)
				q := request{Ndx: int32(k), IFlags: itemTransfer}
				if err := s.sendOne(codec, q, paths[k], paths[k], 1500, sumHead{}, nil, false); err != nil {
					b.Fatal(err)
				}
			}
			if s.open != nil {
				s.open.close()
			}
		})
	}
}

// linkedRoot makes the symlinks (module-relative name: target) in the
// module directory mod and opens it as a Root, closed when t ends.
func linkedRoot(t *testing.T, mod string, links map[string]string) *os.Root {
	t.Helper()
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(mod, filepath.FromSlash(name))); err != nil {
			t.Fatal(err)
		}
	}
	root, err := os.OpenRoot(mod)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	return root
}
