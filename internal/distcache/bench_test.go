package distcache

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkHit measures serving a cached 40 KiB distfile: lookup, reader,
// read, close.
func BenchmarkHit(b *testing.B) {
	st, err := OpenStore(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	src := filepath.Join(b.TempDir(), "src")
	os.WriteFile(src, testData(40<<10, 1), 0o644)
	if err := st.Add("distfiles/small.tar.gz", src, false); err != nil {
		b.Fatal(err)
	}
	c, err := New(Options{Store: st})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64<<10)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body, _, err := c.Distfile(ctx, "small.tar.gz")
			if err != nil {
				b.Fatal(err)
			}
			r := body.NewReader(0)
			if _, err := io.ReadFull(r, buf[:40<<10]); err != nil {
				b.Fatal(err)
			}
			r.Close()
			body.Close()
		}
	})
}
