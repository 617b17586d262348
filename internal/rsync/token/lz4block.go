package token

import (
	"encoding/binary"
	"math/bits"
)

// LZ4 block format limits (lz4_Block_format.md): the last lz4LastLits
// bytes of a block are always literals and no match starts in the last
// lz4MFLimit-1 bytes; a block shorter than lz4MinLen is all literals.
const (
	lz4MinMatch  = 4
	lz4LastLits  = 5
	lz4MFLimit   = 12
	lz4MinLen    = lz4MFLimit + 1
	lz4HashLog   = 12
	lz4SkipShift = 6
	// lz4MaxInput is the largest block lz4Compressor takes: rsync's
	// records hold at most maxDataCount bytes of input.
	lz4MaxInput = maxDataCount
)

// lz4Bound is the largest compressed size of n input bytes.
func lz4Bound(n int) int { return n + n/255 + 16 }

// lz4Compressor compresses small independent LZ4 blocks (at most
// lz4MaxInput bytes each) with LZ4's fast greedy parse. It is made for
// rsync's lz4 token stream, where an ebuild tree sends mostly blocks of
// one or two kilobytes: its hash table is never cleared between blocks.
// Entries hold positions in a running count of all input compressed
// (base is where the current block starts), so an entry from an earlier
// block is recognised as out of range, and every candidate is checked
// against the input before use. The output is a plain LZ4 block, as
// LZ4_compress_default writes them (rsync's receiver decodes it with
// LZ4_decompress_safe).
type lz4Compressor struct {
	table [1 << lz4HashLog]uint32
	base  uint32
}

func lz4Hash(v uint32) uint32 { return (v * 2654435761) >> (32 - lz4HashLog) }

// compress writes src (at most lz4MaxInput bytes) as one LZ4 block to
// dst, which must hold lz4Bound(len(src)) bytes, and returns its length.
func (c *lz4Compressor) compress(src, dst []byte) int {
	n := len(src)
	if n > lz4MaxInput {
		panic("lz4Compressor: block too large")
	}
	_ = dst[lz4Bound(n)-1]
	if c.base > 1<<31 {
		// Positions would overflow in a while: start over.
		c.table = [1 << lz4HashLog]uint32{}
		c.base = 0
	}
	// Stored positions are base+i+1, so that 0 (a cleared table) is
	// never a position of this block.
	base := c.base + 1
	c.base += uint32(n) + 1
	di, anchor := 0, 0
	if n < lz4MinLen {
		return lz4Last(dst, di, src[anchor:])
	}
	limit := n - lz4MFLimit + 1 // a match starts before this
	matchEnd := n - lz4LastLits // and ends at most here
	t := &c.table
	ip := 0
	t[lz4Hash(binary.LittleEndian.Uint32(src[ip:]))] = base + uint32(ip)
	ip++
	fh := lz4Hash(binary.LittleEndian.Uint32(src[ip:]))
	for {
		// Find a match (a 4-byte sequence seen before in this block),
		// stepping faster through data without matches.
		var ref int
		fip := ip
		step, search := 1, 1<<lz4SkipShift
		for {
			h := fh
			ip = fip
			fip += step
			step = search >> lz4SkipShift
			search++
			if fip > limit {
				return lz4Last(dst, di, src[anchor:])
			}
			ref = int(t[h]) - int(base)
			fh = lz4Hash(binary.LittleEndian.Uint32(src[fip:]))
			t[h] = base + uint32(ip)
			if uint(ref) < uint(ip) && binary.LittleEndian.Uint32(src[ref:]) == binary.LittleEndian.Uint32(src[ip:]) {
				break
			}
		}
		// Extend the match backwards over equal literals.
		for ip > anchor && ref > 0 && src[ip-1] == src[ref-1] {
			ip--
			ref--
		}
		tok := di
		di++
		lit := ip - anchor
		if lit >= 15 {
			dst[tok] = 15 << 4
			di = lz4PutLen(dst, di, lit-15)
		} else {
			dst[tok] = byte(lit << 4)
		}
		di += copy(dst[di:], src[anchor:ip])
		for {
			// The match at ip, from ref.
			binary.LittleEndian.PutUint16(dst[di:], uint16(ip-ref))
			di += 2
			ml := lz4Common(src, ip+lz4MinMatch, ref+lz4MinMatch, matchEnd)
			ip += ml + lz4MinMatch
			if ml >= 15 {
				dst[tok] |= 15
				di = lz4PutLen(dst, di, ml-15)
			} else {
				dst[tok] |= byte(ml)
			}
			anchor = ip
			if ip >= limit {
				return lz4Last(dst, di, src[anchor:])
			}
			t[lz4Hash(binary.LittleEndian.Uint32(src[ip-2:]))] = base + uint32(ip-2)
			// A match right here again: no literals between.
			h := lz4Hash(binary.LittleEndian.Uint32(src[ip:]))
			ref = int(t[h]) - int(base)
			t[h] = base + uint32(ip)
			if uint(ref) < uint(ip) && binary.LittleEndian.Uint32(src[ref:]) == binary.LittleEndian.Uint32(src[ip:]) {
				tok = di
				dst[tok] = 0
				di++
				continue
			}
			break
		}
		ip++
		fh = lz4Hash(binary.LittleEndian.Uint32(src[ip:]))
	}
}

// lz4Common returns how many bytes src[a:] and src[b:] (b < a) have in
// common, counting no further than src[:end]. It is not inlined: inside
// compress its loop had to reload spilled registers on every word, and
// alone it runs in registers (compress about 4% faster, measured with
// BenchmarkLZ4Block's user CPU time).
//
//go:noinline
func lz4Common(src []byte, a, b, end int) int {
	n := 0
	for a+n+8 <= end {
		x := binary.LittleEndian.Uint64(src[a+n:]) ^ binary.LittleEndian.Uint64(src[b+n:])
		if x != 0 {
			return n + bits.TrailingZeros64(x)>>3
		}
		n += 8
	}
	for a+n < end && src[a+n] == src[b+n] {
		n++
	}
	return n
}

// lz4PutLen writes the extension bytes of a length field (v = length-15).
func lz4PutLen(dst []byte, di, v int) int {
	for v >= 255 {
		dst[di] = 255
		di++
		v -= 255
	}
	dst[di] = byte(v)
	return di + 1
}

// lz4Last writes the last sequence (literals only) and returns the
// block's length.
func lz4Last(dst []byte, di int, lits []byte) int {
	if len(lits) >= 15 {
		dst[di] = 15 << 4
		di = lz4PutLen(dst, di+1, len(lits)-15)
	} else {
		dst[di] = byte(len(lits) << 4)
		di++
	}
	return di + copy(dst[di:], lits)
}
