package sender

import (
	"bytes"
	"errors"
	"fmt"
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

// matchFile streams r to tw as tokens, referring to the receiver's blocks
// wherever their checksums match (a rolling window over a bounded
// buffer), and feeds all file data to fh for the whole-file checksum.
func matchFile(r io.Reader, h sumHead, sums []blockSum, strong checksum.Strong, tw token.Writer, fh hash.Hash) (matchStats, error) {
	var st matchStats
	if h.Count == 0 || h.BlockLen <= 0 {
		buf := make([]byte, token.ChunkSize)
		for {
			n, err := io.ReadFull(r, buf)
			if n > 0 {
				fh.Write(buf[:n])
				if werr := tw.Literal(buf[:n]); werr != nil {
					return st, werr
				}
				st.Literal += int64(n)
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return st, tw.End()
			}
			if err != nil {
				return st, fmt.Errorf("read file: %w", err)
			}
		}
	}
	blen := int(h.BlockLen)
	byWeak := make(map[uint32][]int32, len(sums))
	for i, s := range sums {
		byWeak[s.Weak] = append(byWeak[s.Weak], int32(i))
	}
	blockLen := func(i int32) int {
		if i == h.Count-1 && h.Remainder != 0 {
			return int(h.Remainder)
		}
		return blen
	}
	bufSize := max(4*blen, 256*1024)
	buf := make([]byte, 0, bufSize)
	pos, lit := 0, 0
	eof := false
	flushLit := func(end int) error {
		if end > lit {
			fh.Write(buf[lit:end])
			if err := tw.Literal(buf[lit:end]); err != nil {
				return err
			}
			st.Literal += int64(end - lit)
		}
		lit = end
		return nil
	}
	var roll checksum.Rolling
	fresh := true
	for {
		if len(buf)-pos < blen && !eof {
			if err := flushLit(pos); err != nil {
				return st, err
			}
			n := copy(buf[:cap(buf)], buf[pos:])
			buf = buf[:n]
			pos, lit = 0, 0
			for len(buf) < cap(buf) && !eof {
				k, err := r.Read(buf[len(buf):cap(buf)])
				buf = buf[:len(buf)+k]
				if errors.Is(err, io.EOF) {
					eof = true
				} else if err != nil {
					return st, fmt.Errorf("read file: %w", err)
				}
			}
		}
		wlen := min(blen, len(buf)-pos)
		if wlen == 0 {
			break
		}
		if fresh {
			roll = checksum.NewRolling(buf[pos : pos+wlen])
			fresh = false
		}
		matched := int32(-1)
		if cands := byWeak[roll.Sum()]; len(cands) > 0 {
			var sum []byte
			for _, i := range cands {
				if blockLen(i) != wlen {
					continue
				}
				if sum == nil {
					sum = strong.Block(buf[pos : pos+wlen])
				}
				if bytes.Equal(sum[:h.StrongLen], sums[i].Strong) {
					matched = i
					break
				}
			}
		}
		if matched >= 0 {
			if err := flushLit(pos); err != nil {
				return st, err
			}
			fh.Write(buf[pos : pos+wlen])
			if err := tw.Match(matched, buf[pos:pos+wlen]); err != nil {
				return st, err
			}
			st.Matched += int64(wlen)
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
