package sender

import (
	"bytes"
	"errors"
	"hash"
	"io"

	"github.com/lanmirror/lanmirror/internal/rsync/checksum"
	"github.com/lanmirror/lanmirror/internal/rsync/token"
)

// sumHead is the block-sum header the receiver sends for one file.
type sumHead struct {
	Count     int32 // number of blocks (0: whole file, no matching)
	BlockLen  int32 // block length
	StrongLen int32 // bytes of each strong sum sent
	Remainder int32 // length of the last block when shorter, else 0
}

// blockSum is one of the receiver's block checksums.
type blockSum struct {
	Weak   uint32
	Strong []byte // the first StrongLen bytes
}

// matchStats counts what matchFile sent.
type matchStats struct {
	Literal, Matched int64
}

// maxChain bounds the candidates examined for one weak checksum, so that
// a pathological set of sums cannot make matching quadratic.
const maxChain = 1024

// readFull reads like io.ReadFull but reports a short file as n < len(p)
// with a nil error; real read errors are wrapped in *readError.
func readFull(r io.Reader, p []byte) (int, error) {
	n, err := io.ReadFull(r, p)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		err = nil
	}
	if err != nil {
		err = &readError{err}
	}
	return n, err
}

// matchFile streams r to tw as tokens, referring to the receiver's blocks
// wherever their checksums match (a rolling window over a bounded
// buffer), and feeds all file data to fh for the whole-file checksum.
// With inplace the receiver overwrites its basis file as it goes, so a
// block that lies before the current offset can no longer be referred to.
// Errors reading r are returned as *readError.
func matchFile(r io.Reader, h sumHead, sums []blockSum, strong checksum.Strong, tw token.Writer, fh hash.Hash, inplace bool) (matchStats, error) {
	var scratch []byte
	return matchFileBuf(r, h, sums, strong, tw, fh, inplace, &scratch)
}

// scratchBuf returns *scratch with at least n bytes of capacity (and
// length n), growing it if needed.
func scratchBuf(scratch *[]byte, n int) []byte {
	if cap(*scratch) < n {
		*scratch = make([]byte, n)
	}
	return (*scratch)[:n]
}

// matchFileBuf is matchFile with a buffer reused from call to call
// (*scratch, grown as needed), so that a session sending thousands of
// small files does not allocate and clear one per file.
func matchFileBuf(r io.Reader, h sumHead, sums []blockSum, strong checksum.Strong, tw token.Writer, fh hash.Hash, inplace bool, scratch *[]byte) (matchStats, error) {
	var st matchStats
	if h.Count == 0 || h.BlockLen <= 0 || len(sums) == 0 {
		buf := scratchBuf(scratch, token.ChunkSize)
		for {
			n, err := readFull(r, buf)
			if n > 0 {
				fh.Write(buf[:n])
				if werr := tw.Literal(buf[:n]); werr != nil {
					return st, werr
				}
				st.Literal += int64(n)
			}
			if err != nil {
				return st, err
			}
			if n < len(buf) {
				return st, tw.End()
			}
		}
	}
	m := newMatcher(h, sums, strong)
	blen := int(h.BlockLen)
	buf := scratchBuf(scratch, max(4*blen, 256*1024))[:0]
	var base int64 // file offset of buf[0]
	pos, lit := 0, 0
	eof := false
	flushLit := func(end int) error {
		for lit < end {
			n := min(end-lit, token.ChunkSize)
			fh.Write(buf[lit : lit+n])
			if err := tw.Literal(buf[lit : lit+n]); err != nil {
				return err
			}
			st.Literal += int64(n)
			lit += n
		}
		return nil
	}
	var roll checksum.Rolling
	fresh := true
	want := int32(0) // the block after the last match: preferred, for runs
	for {
		// Keep one byte beyond the window in the buffer: rolling needs it
		// (RollOut below is for the end of the file only).
		if len(buf)-pos <= blen && !eof {
			if err := flushLit(pos); err != nil {
				return st, err
			}
			n := copy(buf[:cap(buf)], buf[pos:])
			base += int64(pos)
			k, err := readFull(r, buf[n:cap(buf)])
			if err != nil {
				return st, err
			}
			eof = n+k < cap(buf)
			buf = buf[:n+k]
			pos, lit = 0, 0
		}
		wlen := min(blen, len(buf)-pos)
		if wlen == 0 {
			break
		}
		if fresh {
			roll = checksum.NewRolling(buf[pos : pos+wlen])
			fresh = false
		}
		off := base + int64(pos)
		if i := m.find(roll.Sum(), buf[pos:pos+wlen], off, want, inplace); i >= 0 {
			if err := flushLit(pos); err != nil {
				return st, err
			}
			fh.Write(buf[pos : pos+wlen])
			if err := tw.Match(i, buf[pos:pos+wlen]); err != nil {
				return st, err
			}
			st.Matched += int64(wlen)
			want = i + 1
			pos += wlen
			lit = pos
			fresh = true
			continue
		}
		if pos+wlen < len(buf) {
			roll.Roll(buf[pos], buf[pos+wlen])
		} else {
			roll.RollOut(buf[pos])
		}
		pos++
	}
	if err := flushLit(len(buf)); err != nil {
		return st, err
	}
	return st, tw.End()
}

// matcher finds the receiver's block matching a window.
type matcher struct {
	h      sumHead
	sums   []blockSum
	strong checksum.Strong
	byWeak map[uint32][]int32
	tags   []uint64 // bit set over 16 bits of the weak sums: a cheap first test
}

func newMatcher(h sumHead, sums []blockSum, strong checksum.Strong) *matcher {
	m := &matcher{h: h, sums: sums, strong: strong,
		byWeak: make(map[uint32][]int32, len(sums)), tags: make([]uint64, 1<<10)}
	for i, s := range sums {
		m.byWeak[s.Weak] = append(m.byWeak[s.Weak], int32(i))
		t := tag(s.Weak)
		m.tags[t>>6] |= 1 << (t & 63)
	}
	return m
}

func tag(w uint32) uint32 { return (w ^ w>>16) & 0xFFFF }

func (m *matcher) blockLen(i int32) int {
	if i == m.h.Count-1 && m.h.Remainder != 0 {
		return int(m.h.Remainder)
	}
	return int(m.h.BlockLen)
}

// usable tells whether block i may be referred to at file offset off.
func (m *matcher) usable(i int32, n int, off int64, inplace bool) bool {
	if i < 0 || int(i) >= len(m.sums) || m.blockLen(i) != n {
		return false
	}
	return !inplace || int64(i)*int64(m.h.BlockLen) >= off
}

// find returns the index of a block equal to win (weak sum weak) at file
// offset off, preferring block want, or -1.
func (m *matcher) find(weak uint32, win []byte, off int64, want int32, inplace bool) int32 {
	t := tag(weak)
	if m.tags[t>>6]&(1<<(t&63)) == 0 {
		return -1
	}
	cands := m.byWeak[weak]
	if len(cands) == 0 {
		return -1
	}
	var sum []byte
	same := func(i int32) bool {
		if sum == nil {
			sum = m.strong.Block(win)
		}
		return bytes.Equal(sum[:m.h.StrongLen], m.sums[i].Strong)
	}
	if m.usable(want, len(win), off, inplace) && m.sums[want].Weak == weak && same(want) {
		return want
	}
	for k, i := range cands {
		if k >= maxChain {
			break
		}
		if i != want && m.usable(i, len(win), off, inplace) && same(i) {
			return i
		}
	}
	return -1
}
