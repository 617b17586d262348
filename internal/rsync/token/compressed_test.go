package token

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"testing"

	"github.com/lanmirror/lanmirror/internal/testutil"
)

// sessionFile is one file of a scripted session: the receiver's blocks
// and what the sender's matcher reports, in order.
type sessionFile struct {
	blocks [][]byte
	ops    []op
}

// play feeds a scripted session to w.
func play(w Writer, files []sessionFile) error {
	for fi, f := range files {
		for _, o := range f.ops {
			var err error
			if o.lit != nil {
				err = w.Literal(o.lit)
			} else {
				err = w.Match(o.block, f.blocks[o.block])
			}
			if err != nil {
				return fmt.Errorf("file %d: %w", fi, err)
			}
		}
		if err := w.End(); err != nil {
			return fmt.Errorf("file %d: end: %w", fi, err)
		}
	}
	return nil
}

// normalize merges adjacent literals (the receiver sees one run) and
// drops empty ones.
func normalize(ops []op) []op {
	var out []op
	for _, o := range ops {
		if o.lit != nil {
			if len(o.lit) == 0 {
				continue
			}
			if n := len(out); n > 0 && out[n-1].lit != nil {
				out[n-1].lit = append(append([]byte{}, out[n-1].lit...), o.lit...)
				continue
			}
		}
		out = append(out, o)
	}
	return out
}

// rebuild is the file the receiver writes.
func rebuild(f sessionFile, ops []op) []byte {
	var b []byte
	for _, o := range ops {
		if o.lit != nil {
			b = append(b, o.lit...)
		} else {
			b = append(b, f.blocks[o.block]...)
		}
	}
	return b
}

// checkSession encodes files with the named compression and decodes the
// stream with the receiver model, comparing every file's operations and
// content.
func checkSession(t *testing.T, compress string, level, protocol int, files []sessionFile) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriterProtocol(&buf, compress, level, protocol)
	if err != nil {
		t.Fatal(err)
	}
	if err := play(w, files); err != nil {
		t.Fatal(err)
	}
	var got [][]op
	switch compress {
	case "zlib", "zlibx":
		got, err = decodeDeflate(buf.Bytes(), compress == "zlib", protocol, len(files),
			func(f int, i int32) []byte { return files[f].blocks[i] })
	case "lz4":
		got, err = decodeLZ4(buf.Bytes(), len(files))
	case "zstd":
		// libzstd (the zstd tool) is the oracle; ZCLI=0 decodes with
		// klauspost/compress only (faster, for quick local runs).
		useCLI := os.Getenv("ZCLI") != "0"
		if useCLI {
			testutil.RequireTool(t, "zstd")
		}
		got, err = decodeZstd(buf.Bytes(), len(files), useCLI)
	default:
		t.Fatalf("no decoder for %q", compress)
	}
	if err != nil {
		t.Fatalf("%s level %d protocol %d: decode: %v", compress, level, protocol, err)
	}
	for i, f := range files {
		want := normalize(f.ops)
		if len(got[i]) != len(want) {
			t.Fatalf("%s file %d: %d operations decoded, want %d", compress, i, len(got[i]), len(want))
		}
		for j := range want {
			g, w := got[i][j], want[j]
			if (g.lit == nil) != (w.lit == nil) || !bytes.Equal(g.lit, w.lit) || g.block != w.block {
				t.Fatalf("%s file %d op %d: got block %d / %d literal bytes, want block %d / %d literal bytes",
					compress, i, j, g.block, len(g.lit), w.block, len(w.lit))
			}
		}
		if !bytes.Equal(rebuild(f, got[i]), rebuild(f, want)) {
			t.Fatalf("%s file %d: content differs", compress, i)
		}
	}
	return buf.Bytes()
}

var words = []string{"ebuild", "inherit", "SRC_URI", "KEYWORDS", "amd64", "~arm64", "DEPEND",
	"dev-libs/openssl", "src_configure", "econf", "\n", "\t", " ", "=", "\"", "${PV}", "# Copyright"}

// textData is compressible, ebuild-like text.
func textData(r *rand.Rand, n int) []byte {
	var b []byte
	for len(b) < n {
		b = append(b, words[r.IntN(len(words))]...)
		b = append(b, ' ')
	}
	return b[:n]
}

// randData is incompressible.
func randData(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// randomFile scripts a file as a delta run against blocks of blen bytes
// produces it: fresh literals, runs of matched blocks, jumps forward and
// back, and literals that copy (with a few changes) blocks matched just
// before, so that the compressor refers into matched data.
func randomFile(r *rand.Rand, nblocks, blen int, text bool) sessionFile {
	gen := randData
	if text {
		gen = textData
	}
	f := sessionFile{}
	for i := 0; i < nblocks; i++ {
		n := blen
		if i == nblocks-1 {
			n = 1 + r.IntN(blen)
		}
		f.blocks = append(f.blocks, gen(r, n))
	}
	last := int32(0)
	for k := 0; k < 40; k++ {
		switch p := r.IntN(100); {
		case p < 25:
			f.ops = append(f.ops, op{lit: gen(r, 1+r.IntN(3*blen))})
		case p < 55:
			start := last + 1
			if r.IntN(3) == 0 {
				start = int32(r.IntN(nblocks))
			}
			for n := 1 + r.IntN(6); n > 0 && int(start) < nblocks; n-- {
				f.ops = append(f.ops, op{block: start})
				last = start
				start++
			}
		case p < 80:
			b := append([]byte{}, f.blocks[last]...)
			for c := r.IntN(4); c > 0; c-- {
				b[r.IntN(len(b))] ^= 0x5a
			}
			f.ops = append(f.ops, op{lit: b})
		case p < 90:
			last = int32(r.IntN(nblocks))
			f.ops = append(f.ops, op{block: last})
		default:
			f.ops = append(f.ops, op{lit: []byte{}})
		}
	}
	return f
}

func randomSession(seed uint64, nfiles, blen int) []sessionFile {
	r := rand.New(rand.NewPCG(seed, 7))
	var files []sessionFile
	for i := 0; i < nfiles; i++ {
		files = append(files, randomFile(r, 4+r.IntN(200), blen, i%2 == 0))
	}
	// A whole-file transfer and an empty file, as -W sends them.
	files = append(files, sessionFile{ops: []op{{lit: textData(r, 40000)}}}, sessionFile{})
	return files
}

func TestCompressedSessions(t *testing.T) {
	for _, c := range []struct {
		compress string
		level    int
	}{{"zlib", -1}, {"zlib", 1}, {"zlib", 9}, {"zlibx", -1}, {"zstd", -1}, {"zstd", 7}, {"lz4", -1}} {
		for seed := uint64(1); seed <= 2; seed++ {
			t.Run(fmt.Sprintf("%s-%d-%d", c.compress, c.level, seed), func(t *testing.T) {
				checkSession(t, c.compress, c.level, 31, randomSession(seed, 4, 700+int(seed)*500))
			})
		}
	}
}

// TestMatchedDataInHistory shows that for zlib a literal repeating a
// matched block compresses to a back-reference into it, and that the
// receiver model resolves it; zlibx must send it in full.
func TestMatchedDataInHistory(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	blk := randData(r, 8192)
	files := []sessionFile{{blocks: [][]byte{blk}, ops: []op{{block: 0}, {lit: blk}}}}
	zlib := checkSession(t, "zlib", -1, 31, files)
	zlibx := checkSession(t, "zlibx", -1, 31, files)
	if len(zlib) > 100 {
		t.Errorf("zlib: a copy of a matched 8 KiB block took %d bytes: matched data is not in the history", len(zlib))
	}
	if len(zlibx) < 8192 {
		t.Errorf("zlibx: %d bytes for 8 KiB of random literal data", len(zlibx))
	}
}

// TestLongBlocks covers blocks longer than one stored block (0xffff):
// before protocol 31 both sides feed the block's first 64 KiB again.
func TestLongBlocks(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	blocks := [][]byte{randData(r, 100000), randData(r, 70000)}
	copyOf := func(b []byte) []byte { return append([]byte{}, b[len(b)-20000:]...) }
	files := []sessionFile{{blocks: blocks, ops: []op{
		{block: 0}, {lit: copyOf(blocks[0])}, {block: 1}, {lit: blocks[1][:30000]}, {lit: copyOf(blocks[1])},
	}}}
	for _, proto := range []int{27, 30, 31} {
		b := checkSession(t, "zlib", -1, proto, files)
		if proto < 31 {
			// The history the receiver holds differs: a stream made
			// for protocol 31 must not decode at 30.
			var buf bytes.Buffer
			w, _ := NewWriterProtocol(&buf, "zlib", -1, 31)
			if err := play(w, files); err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(buf.Bytes(), b) {
				t.Errorf("protocol %d: same stream as protocol 31", proto)
			}
		}
	}
}

// TestRunRecords checks the block records byte for byte: runs, relative
// and absolute numbers, the 64 Ki-block run limit, and the per-file
// restart of relative numbering.
func TestRunRecords(t *testing.T) {
	for _, compress := range []string{"zlib", "zlibx", "zstd", "lz4"} {
		var buf bytes.Buffer
		w, err := NewWriter(&buf, compress, -1)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range []int32{0, 1, 2, 10, 200, 5, 6} {
			if err := w.Match(b, nil); err != nil {
				t.Fatal(err)
			}
		}
		for b := int32(1000); b < 1000+70000; b++ {
			if err := w.Match(b, nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.End(); err != nil {
			t.Fatal(err)
		}
		if err := w.Match(3, nil); err != nil {
			t.Fatal(err)
		}
		if err := w.End(); err != nil {
			t.Fatal(err)
		}
		want := []byte{0xc0, 2, 0}  // 0..2
		want = append(want, 0x80+8) // 10
		want = append(want, 0x20)   // 200: too far for a relative record
		want = binary.LittleEndian.AppendUint32(want, 200)
		want = append(want, 0x21) // 5..6: backwards
		want = binary.LittleEndian.AppendUint32(want, 5)
		want = append(want, 1, 0)
		want = append(want, 0x21) // 1000..66535
		want = binary.LittleEndian.AppendUint32(want, 1000)
		want = append(want, 0xff, 0xff)
		want = append(want, 0xc0+1) // 66536..70999
		want = binary.LittleEndian.AppendUint16(want, 70999-66536)
		want = append(want, 0)         // end
		want = append(want, 0x80+3, 0) // next file counts from 0 again
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("%s:\n got % x\nwant % x", compress, buf.Bytes(), want)
		}
		if err := w.Match(-1, nil); err == nil {
			t.Errorf("%s: negative block accepted", compress)
		}
	}
}

// TestChunkLimit checks that no compressed record exceeds 16383 bytes
// and that runs longer than one record decode (incompressible data).
func TestChunkLimit(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	files := []sessionFile{{ops: []op{{lit: randData(r, 300000)}}}}
	for _, c := range []string{"zlib", "zstd", "lz4"} {
		b := checkSession(t, c, -1, 31, files)
		s := &stream{r: bytes.NewReader(b)}
		records := 0
		var rx int32
		for {
			rec, err := s.next(&rx)
			if err != nil {
				t.Fatal(err)
			}
			if rec.end {
				break
			}
			records++
			if len(rec.data) > maxDataCount {
				t.Fatalf("%s: record of %d bytes", c, len(rec.data))
			}
		}
		if records < 300000/maxDataCount {
			t.Errorf("%s: only %d records", c, records)
		}
	}
}

func TestLevels(t *testing.T) {
	files := randomSession(11, 1, 600)
	for _, l := range []int{-1, 1, 4, 7, 9, 12, -5} {
		checkSession(t, "zlib", l, 31, files)
	}
	for _, l := range []int{-1, 0, 1, 6, 22, -3} {
		checkSession(t, "zstd", l, 31, files)
	}
	// Level 0 turns zlib off on both sides of stock rsync.
	for _, c := range []string{"zlib", "zlibx"} {
		w, err := NewWriter(&bytes.Buffer{}, c, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := w.(Plain); !ok {
			t.Errorf("%s level 0: %T, want Plain", c, w)
		}
	}
	if _, err := NewWriter(&bytes.Buffer{}, "lz5", -1); err == nil {
		t.Error("lz5 accepted")
	}
}

type failWriter struct{ left int }

func (f *failWriter) Write(p []byte) (int, error) {
	if len(p) > f.left {
		n := f.left
		f.left = 0
		return n, errors.New("connection lost")
	}
	f.left -= len(p)
	return len(p), nil
}

// TestWriteErrors: a failing connection surfaces as an error from every
// later call, never a panic or a silent success.
func TestWriteErrors(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	data := randData(r, 100000)
	for _, c := range []string{"zlib", "zlibx", "zstd", "lz4"} {
		for _, limit := range []int{0, 1, 100, 20000} {
			w, err := NewWriter(&failWriter{left: limit}, c, -1)
			if err != nil {
				t.Fatal(err)
			}
			err = w.Literal(data)
			if err == nil {
				err = w.Match(0, data[:10])
			}
			if err == nil {
				err = w.End()
			}
			if err == nil {
				t.Fatalf("%s limit %d: no error", c, limit)
			}
			if w.End() == nil || w.Literal([]byte("x")) == nil {
				t.Fatalf("%s limit %d: calls after an error succeed", c, limit)
			}
		}
	}
}

// TestAllocs: steady-state tokens allocate (almost) nothing.
func TestAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	blk := textData(r, 2048)
	lit := textData(r, 3000)
	for _, c := range []string{"zlib", "zlibx", "zstd", "lz4"} {
		w, err := NewWriter(&bytes.Buffer{}, c, -1)
		if err != nil {
			t.Fatal(err)
		}
		step := func() {
			_ = w.Literal(lit)
			_ = w.Match(1, blk)
			_ = w.Match(7, blk)
			_ = w.Literal(lit)
			_ = w.End()
		}
		for i := 0; i < 20; i++ {
			step()
		}
		if a := testing.AllocsPerRun(50, step); a > 2 {
			t.Errorf("%s: %.1f allocations per file", c, a)
		}
	}
}

// FuzzSessions runs random scripted sessions through every writer and
// the receiver model (go test -fuzz=FuzzSessions for more seeds).
func FuzzSessions(f *testing.F) {
	f.Add(uint64(100), uint16(900), uint8(31))
	f.Add(uint64(101), uint16(70), uint8(30))
	f.Fuzz(func(t *testing.T, seed uint64, blen uint16, proto uint8) {
		files := randomSession(seed, 2, 1+int(blen)%4000)
		p := 30 + int(proto)%2
		for _, c := range []string{"zlib", "zlibx"} {
			checkSession(t, c, []int{-1, 1, 2, 3, 4, 5, 6, 7, 8, 9}[seed%10], p, files)
		}
		checkSession(t, "zstd", -1, 31, files)
		checkSession(t, "lz4", -1, 31, files)
	})
}

// TestNoGoroutines: writers leave no goroutines running, so a session
// that ends (even without a final End) leaks nothing. It catches an
// encoder with persistent workers (zstd WithConcurrentBlocks); klauspost's
// per-block goroutines of WithEncoderConcurrency(2) end at each flush and
// pass it too, which is why the writer asks for 1 (synchronous).
func TestNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	r := rand.New(rand.NewPCG(4, 4))
	data := textData(r, 300000)
	for _, c := range []string{"zlib", "zlibx", "zstd", "lz4"} {
		for i := 0; i < 5; i++ {
			w, err := NewWriter(io.Discard, c, -1)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Literal(data); err != nil {
				t.Fatal(err)
			}
			if err := w.Match(0, data[:1000]); err != nil {
				t.Fatal(err)
			}
			if n := runtime.NumGoroutine(); n > before {
				t.Fatalf("%s: %d goroutines running, %d before", c, n, before)
			}
		}
	}
}
