package flist

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/lanmirror/lanmirror/internal/rsync/filter"
)

// BenchmarkSelectEncode measures what one no-op client costs the server
// for the file list: selecting a module's shared scan with Portage's
// excludes and encoding it (protocol 31, varint flags).
func BenchmarkSelectEncode(b *testing.B) {
	dir := b.TempDir()
	const nfiles = 20000
	for i := 0; i < nfiles; i++ {
		p := filepath.Join(dir, fmt.Sprintf("cat-%d/pkg-%d/pkg-%d.ebuild", i%150, i%3000, i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer root.Close()
	c := NewCache(root, nil, nil)
	rules, err := filter.Parse([]string{"- /distfiles", "- /local", "- /packages", "- /.git"}, 31)
	if err != nil {
		b.Fatal(err)
	}
	req := Request{Paths: []string{""}, Recursive: true, Links: true, Rules: rules, Protocol: 31}
	if _, err := c.Select(context.Background(), req); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		l, err := c.Select(context.Background(), req)
		if err != nil {
			b.Fatal(err)
		}
		w := bufio.NewWriter(io.Discard)
		if err := l.Encode(w, EncodeOptions{Protocol: 31, VarintFlags: true, Links: true, Recursive: true}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPrepared measures the same request once the encoded list is
// shared: what every further no-op client costs.
func BenchmarkPrepared(b *testing.B) {
	dir := b.TempDir()
	for i := 0; i < 5000; i++ {
		p := filepath.Join(dir, fmt.Sprintf("cat-%d/pkg-%d/pkg-%d.ebuild", i%150, i%1000, i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer root.Close()
	c := NewCache(root, nil, nil)
	req := Request{Paths: []string{""}, Recursive: true, Links: true, Protocol: 31}
	eo := EncodeOptions{Protocol: 31, VarintFlags: true, Links: true, Recursive: true}
	for b.Loop() {
		p, err := c.Prepare(context.Background(), req, "portage", nil, eo)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Discard.Write(p.Encoded); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScan measures a full scan of a module (what the first client
// after a change waits for), walking the subtrees sequentially and with
// the default number of workers.
func BenchmarkScan(b *testing.B) {
	dir := b.TempDir()
	for i := 0; i < 20000; i++ {
		p := filepath.Join(dir, fmt.Sprintf("cat-%d/pkg-%d/pkg-%d.ebuild", i%150, i%3000, i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer root.Close()
	c := NewCache(root, nil, nil)
	c.Watch = false
	for _, workers := range []int{1, scanWorkers()} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			for b.Loop() {
				fi, err := root.Lstat(".")
				if err != nil {
					b.Fatal(err)
				}
				top, err := c.fileOf(".", fi)
				if err != nil {
					b.Fatal(err)
				}
				out := []*File{top}
				rootfd, closeRoot := c.openRootFD()
				if err := c.walkDir(context.Background(), ".", &out, map[string]dirStamp{}, workers, rootfd); err != nil {
					b.Fatal(err)
				}
				closeRoot()
			}
		})
	}
}
