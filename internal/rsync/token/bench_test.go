package token

import (
	"cmp"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkSmallFiles is the cost per file of a whole-file sync of an
// ebuild tree with -z: many small text files through one writer.
func BenchmarkSmallFiles(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	files := make([][]byte, 256)
	for i := range files {
		files[i] = textData(r, 500+r.IntN(4000))
	}
	for _, c := range []string{"none", "zlib", "zlibx", "zstd", "zstd/1", "lz4"} {
		b.Run(c, func(b *testing.B) {
			name, lvl, _ := strings.Cut(c, "/")
			level, _ := strconv.Atoi(lvl)
			w, err := NewWriter(io.Discard, name, cmp.Or(level, -1))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			var n int64
			for i := 0; b.Loop(); i++ {
				f := files[i%len(files)]
				n += int64(len(f))
				if err := w.Literal(f); err != nil {
					b.Fatal(err)
				}
				if err := w.End(); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(n / int64(b.N))
		})
	}
}

// BenchmarkDelta is a delta of a large file: literals between matched
// blocks, each switch restarting the zlib compressor with its history.
func BenchmarkDelta(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	blk := textData(r, 2048)
	lit := textData(r, 300)
	for _, c := range []string{"zlib", "zlibx", "zstd"} {
		b.Run(c, func(b *testing.B) {
			w, err := NewWriter(io.Discard, c, -1)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(blk)*4 + len(lit)))
			for i := 0; b.Loop(); i++ {
				for k := int32(0); k < 4; k++ {
					if err := w.Match(int32(i)*4+k, blk); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.Literal(lit); err != nil {
					b.Fatal(err)
				}
				if i%1000 == 999 {
					if err := w.End(); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
