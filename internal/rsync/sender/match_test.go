package sender

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/lanmirror/lanmirror/internal/rsync/checksum"
	"github.com/lanmirror/lanmirror/internal/rsync/token"
)

// makeSums computes block sums of old the way a receiver does.
func makeSums(old []byte, blen, s2len int, strong checksum.Strong) (sumHead, []blockSum) {
	h := sumHead{BlockLen: int32(blen), StrongLen: int32(s2len)}
	var sums []blockSum
	for off := 0; off < len(old); off += blen {
		b := old[off:min(off+blen, len(old))]
		sums = append(sums, blockSum{Weak: checksum.NewRolling(b).Sum(), Strong: strong.Block(b)[:s2len]})
		if len(b) < blen {
			h.Remainder = int32(len(b))
		}
	}
	h.Count = int32(len(sums))
	return h, sums
}

// applyTokens rebuilds the new file from old and a plain token stream.
func applyTokens(t *testing.T, old, stream []byte, blen int) []byte {
	var out []byte
	for {
		v := int32(binary.LittleEndian.Uint32(stream))
		stream = stream[4:]
		switch {
		case v == 0:
			if len(stream) != 0 {
				t.Fatalf("%d bytes after end token", len(stream))
			}
			return out
		case v > 0:
			out = append(out, stream[:v]...)
			stream = stream[v:]
		default:
			i := int(-v - 1)
			out = append(out, old[i*blen:min(i*blen+blen, len(old))]...)
		}
	}
}

func TestMatchFileDelta(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	old := make([]byte, 700_000)
	for i := range old {
		old[i] = byte(rng.IntN(256))
	}
	// New version: an insertion, a modification and a deletion.
	nw := append([]byte{}, old[:1000]...)
	nw = append(nw, []byte("inserted text")...)
	nw = append(nw, old[1000:300_000]...)
	nw = append(nw, bytes.Repeat([]byte{0xAA}, 5000)...)
	nw = append(nw, old[310_000:690_000]...)
	for _, proto := range []int{29, 31} {
		strong := checksum.ForProtocol(proto, 12345, true)
		const blen = 1400
		h, sums := makeSums(old, blen, 16, strong)
		var stream bytes.Buffer
		fh := md5.New()
		st, err := matchFile(bytes.NewReader(nw), h, sums, strong, token.Plain{W: &stream}, fh, false)
		if err != nil {
			t.Fatal(err)
		}
		got := applyTokens(t, old, stream.Bytes(), blen)
		if !bytes.Equal(got, nw) {
			t.Fatalf("proto %d: rebuilt file differs (%d vs %d bytes)", proto, len(got), len(nw))
		}
		if st.Matched < 600_000 || st.Literal > 20_000 || st.Matched+st.Literal != int64(len(nw)) {
			t.Fatalf("proto %d: matched %d literal %d", proto, st.Matched, st.Literal)
		}
		want := md5.Sum(nw)
		if !bytes.Equal(fh.Sum(nil), want[:]) {
			t.Fatal("file checksum does not cover all data")
		}
	}
}

func TestMatchFileWhole(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 10_000)
	var stream bytes.Buffer
	st, err := matchFile(bytes.NewReader(data), sumHead{}, nil, checksum.ForProtocol(31, 1, true), token.Plain{W: &stream}, md5.New(), false)
	if err != nil {
		t.Fatal(err)
	}
	if st.Literal != int64(len(data)) || st.Matched != 0 {
		t.Fatalf("stats %+v", st)
	}
	if got := applyTokens(t, nil, stream.Bytes(), 0); !bytes.Equal(got, data) {
		t.Fatal("whole-file stream differs")
	}
	// Empty file: only the end token.
	stream.Reset()
	if _, err := matchFile(bytes.NewReader(nil), sumHead{}, nil, checksum.ForProtocol(31, 1, true), token.Plain{W: &stream}, md5.New(), false); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stream.Bytes(), []byte{0, 0, 0, 0}) {
		t.Fatalf("empty file stream % x", stream.Bytes())
	}
}

// applyInplace rebuilds the new file the way an --inplace receiver does:
// writing over its basis file while reading matched blocks from it.
func applyInplace(t *testing.T, old, stream []byte, blen int) []byte {
	f := append([]byte{}, old...)
	w := 0
	put := func(p []byte) {
		if w+len(p) > len(f) {
			f = append(f, make([]byte, w+len(p)-len(f))...)
		}
		copy(f[w:], p)
		w += len(p)
	}
	for {
		v := int32(binary.LittleEndian.Uint32(stream))
		stream = stream[4:]
		switch {
		case v == 0:
			return f[:w]
		case v > 0:
			put(stream[:v])
			stream = stream[v:]
		default:
			i := int(-v - 1)
			blk := append([]byte{}, f[i*blen:min(i*blen+blen, len(old))]...)
			put(blk)
		}
	}
}

// TestMatchFileInplace swaps and shifts blocks: with inplace, no match
// may refer to a block the receiver has already overwritten.
func TestMatchFileInplace(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const blen = 1000
	old := make([]byte, 20*blen+300)
	for i := range old {
		old[i] = byte(rng.IntN(256))
	}
	// Blocks 5..9 moved to the front, then everything else.
	nw := append([]byte{}, old[5*blen:10*blen]...)
	nw = append(nw, old[:5*blen]...)
	nw = append(nw, old[10*blen:]...)
	strong := checksum.ForProtocol(31, 99, true)
	h, sums := makeSums(old, blen, 16, strong)
	for _, inplace := range []bool{false, true} {
		var stream bytes.Buffer
		st, err := matchFile(bytes.NewReader(nw), h, sums, strong, token.Plain{W: &stream}, md5.New(), inplace)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(applyTokens(t, old, stream.Bytes(), blen), nw) {
			t.Fatalf("inplace=%v: rebuilt file differs", inplace)
		}
		if inplace && !bytes.Equal(applyInplace(t, old, stream.Bytes(), blen), nw) {
			t.Fatal("in-place rebuild differs: a match referred to overwritten data")
		}
		if st.Matched == 0 {
			t.Fatalf("inplace=%v: nothing matched", inplace)
		}
		if !inplace && st.Literal != 0 {
			t.Fatalf("moved blocks sent as %d literal bytes", st.Literal)
		}
		// The plain stream would corrupt an in-place receiver: the check
		// above is meaningful.
		if !inplace && bytes.Equal(applyInplace(t, old, stream.Bytes(), blen), nw) {
			t.Fatal("test data does not exercise in-place ordering")
		}
	}
}

// failReader returns some data, then an I/O error.
type failReader struct{ n int }

func (f *failReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("disk on fire")
	}
	k := min(len(p), f.n)
	f.n -= k
	return k, nil
}

// TestMatchFileReadError: a failing read is reported as *readError (the
// session then sends a checksum that cannot match), in both modes.
func TestMatchFileReadError(t *testing.T) {
	strong := checksum.ForProtocol(31, 1, true)
	old := bytes.Repeat([]byte("abcdefgh"), 1000)
	h, sums := makeSums(old, 700, 16, strong)
	for _, delta := range []bool{false, true} {
		hh, ss := sumHead{}, []blockSum(nil)
		if delta {
			hh, ss = h, sums
		}
		var stream bytes.Buffer
		_, err := matchFile(&failReader{n: 100_000}, hh, ss, strong, token.Plain{W: &stream}, md5.New(), false)
		var re *readError
		if !errors.As(err, &re) {
			t.Fatalf("delta=%v: want *readError, got %v", delta, err)
		}
	}
	if s := badSum([]byte{0, 0}); bytes.Equal(s, []byte{0, 0}) {
		t.Fatal("badSum returned the same sum")
	}
}
