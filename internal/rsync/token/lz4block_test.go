package token

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/pierrec/lz4/v4"
)

// checkLZ4Block decodes blk with the independent decoder (unlz4Block)
// and with pierrec/lz4's, compares both with src and checks the block
// format's end rules (the last 5 bytes are literals, no match starts in
// the last 12), which LZ4 decoders may rely on.
func checkLZ4Block(src, blk []byte) error {
	if len(blk) > lz4Bound(len(src)) {
		return fmt.Errorf("%d bytes compress to %d, over the bound %d", len(src), len(blk), lz4Bound(len(src)))
	}
	got, err := unlz4Block(blk, len(src))
	if err != nil {
		return err
	}
	if !bytes.Equal(got, src) {
		return errors.New("decoded block differs from the input")
	}
	out := make([]byte, len(src)+64)
	n, err := lz4.UncompressBlock(blk, out)
	if err != nil {
		return fmt.Errorf("pierrec/lz4 decoder: %w", err)
	}
	if !bytes.Equal(out[:n], src) {
		return errors.New("pierrec/lz4 decodes something else")
	}
	// Walk the sequences for the end rules.
	i, pos, lastMatchStart := 0, 0, -1
	ext := func(n int) int {
		if n == 15 {
			for {
				b := blk[i]
				i++
				n += int(b)
				if b != 255 {
					break
				}
			}
		}
		return n
	}
	for {
		tok := blk[i]
		i++
		lit := ext(int(tok >> 4))
		i += lit
		pos += lit
		if i == len(blk) {
			if len(src) >= lz4MinLen && lit < lz4LastLits {
				return fmt.Errorf("last sequence has %d literals", lit)
			}
			if lastMatchStart >= 0 && lastMatchStart > len(src)-lz4MFLimit+1 {
				return fmt.Errorf("a match starts at %d of %d", lastMatchStart, len(src))
			}
			return nil
		}
		i += 2
		lastMatchStart = pos
		pos += ext(int(tok&15)) + lz4MinMatch
	}
}

func lz4TestInputs(r *rand.Rand) [][]byte {
	var in [][]byte
	for n := 0; n <= 40; n++ {
		in = append(in, textData(r, n), bytes.Repeat([]byte{'a'}, n), randData(r, n))
	}
	for _, n := range []int{100, 255, 256, 270, 1000, 1500, 4096, 8000, 16382, lz4MaxInput} {
		in = append(in, textData(r, n), bytes.Repeat([]byte("ab"), n/2), randData(r, n))
		mixed := append(randData(r, n/3), textData(r, n/3)...)
		in = append(in, append(mixed, bytes.Repeat([]byte{0}, n-len(mixed))...))
	}
	return in
}

// TestLZ4Compressor compresses varied blocks with one compressor (stale
// table entries from earlier blocks must not leak into later ones) and
// decodes them with two decoders.
func TestLZ4Compressor(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var c lz4Compressor
	dst := make([]byte, lz4Bound(lz4MaxInput))
	var textIn, textOut int
	for round := 0; round < 3; round++ {
		for k, src := range lz4TestInputs(r) {
			n := c.compress(src, dst)
			if err := checkLZ4Block(src, dst[:n]); err != nil {
				t.Fatalf("round %d, input %d (%d bytes): %v", round, k, len(src), err)
			}
		}
		for range 200 {
			src := textData(r, 300+r.IntN(3000))
			n := c.compress(src, dst)
			if err := checkLZ4Block(src, dst[:n]); err != nil {
				t.Fatalf("text of %d bytes: %v", len(src), err)
			}
			textIn += len(src)
			textOut += n
		}
	}
	// It compresses: text of a few words repeated shrinks to well under
	// half (pierrec/lz4 gets about the same).
	if textOut*2 > textIn {
		t.Errorf("text compressed to %d of %d bytes", textOut, textIn)
	}
	// Positions wrapping: the table is cleared and compression goes on.
	c.base = 1<<31 + 1
	for range 3 {
		src := textData(r, 5000)
		n := c.compress(src, dst)
		if err := checkLZ4Block(src, dst[:n]); err != nil {
			t.Fatalf("after the wrap: %v", err)
		}
	}
}

func FuzzLZ4Compressor(f *testing.F) {
	f.Add([]byte("hello hello hello hello hello"), []byte("abcabcabcabcabcabcabcabc"))
	f.Add([]byte{}, bytes.Repeat([]byte{0}, 100))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		var c lz4Compressor
		dst := make([]byte, lz4Bound(lz4MaxInput))
		for _, src := range [][]byte{a, b, append(a, b...)} {
			src = src[:min(len(src), lz4MaxInput)]
			n := c.compress(src, dst)
			if err := checkLZ4Block(src, dst[:n]); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// BenchmarkLZ4Block compares lz4Compressor with pierrec/lz4's block
// compressor on small text blocks (ebuild-sized).
func BenchmarkLZ4Block(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	files := make([][]byte, 256)
	for i := range files {
		files[i] = textData(r, 500+r.IntN(4000))
	}
	dst := make([]byte, lz4Bound(lz4MaxInput))
	b.Run("ours", func(b *testing.B) {
		var c lz4Compressor
		var n, out int64
		for i := 0; b.Loop(); i++ {
			f := files[i%len(files)]
			n += int64(len(f))
			out += int64(c.compress(f, dst))
		}
		b.SetBytes(n / int64(b.N))
		b.ReportMetric(float64(out)/float64(n), "ratio")
	})
	b.Run("pierrec", func(b *testing.B) {
		var c lz4.Compressor
		var n, out int64
		for i := 0; b.Loop(); i++ {
			f := files[i%len(files)]
			n += int64(len(f))
			k, _ := c.CompressBlock(f, dst)
			out += int64(k)
		}
		b.SetBytes(n / int64(b.N))
		b.ReportMetric(float64(out)/float64(n), "ratio")
	})
}
