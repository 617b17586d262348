// Package checksum implements the checksums of the rsync protocol: the
// weak rolling checksum used for block matching and the strong block and
// whole-file checksums per protocol version (MD4 with the session seed for
// protocols 27 to 29, MD5 from protocol 30).
package checksum

import (
	"crypto/md5"
	"encoding/binary"
	"hash"

	"golang.org/x/crypto/md4"
)

// Rolling is rsync's weak checksum over a window of bytes. Bytes are
// treated as signed chars, as the reference implementation does.
type Rolling struct {
	s1, s2 uint32
	n      uint32
}

// NewRolling computes the weak checksum of block.
func NewRolling(block []byte) Rolling {
	var s1, s2 uint32
	for _, b := range block {
		s1 += uint32(int32(int8(b)))
		s2 += s1
	}
	return Rolling{s1: s1, s2: s2, n: uint32(len(block))}
}

// Sum returns the 32-bit value sent on the wire.
func (r Rolling) Sum() uint32 { return r.s1&0xFFFF | r.s2<<16 }

// Roll moves the window one byte: out leaves at the front, in enters at
// the back.
func (r *Rolling) Roll(out, in byte) {
	o := uint32(int32(int8(out)))
	r.s1 = r.s1 - o + uint32(int32(int8(in)))
	r.s2 = r.s2 - r.n*o + r.s1
}

// RollOut removes out from the front of the window, shrinking it (used at
// the end of a file where the last block is short).
func (r *Rolling) RollOut(out byte) {
	o := uint32(int32(int8(out)))
	r.s1 -= o
	r.s2 -= r.n * o
	r.n--
}

// Kind names a strong checksum algorithm.
type Kind string

// Supported algorithms.
const (
	MD4 Kind = "md4"
	MD5 Kind = "md5"
)

// Strong computes block and file checksums for one session.
type Strong struct {
	Kind Kind
	// Seed is the session checksum seed.
	Seed int32
	// ProperSeedOrder puts the seed before the block data for MD5
	// (compat flag CHKSUM_SEED_FIX).
	ProperSeedOrder bool
}

// ForProtocol returns the default strong checksum for a protocol version
// when nothing was negotiated.
func ForProtocol(protocol int, seed int32, seedFix bool) Strong {
	if protocol >= 30 {
		return Strong{Kind: MD5, Seed: seed, ProperSeedOrder: seedFix}
	}
	return Strong{Kind: MD4, Seed: seed}
}

// Len is the full length of the digest in bytes.
func (s Strong) Len() int { return 16 }

func seedBytes(seed int32) []byte {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], uint32(seed))
	return b[:]
}

// Block returns the strong checksum of one block as the receiver computes
// it for its block sums.
func (s Strong) Block(block []byte) []byte {
	var h hash.Hash
	if s.Kind == MD5 {
		h = md5.New()
		if s.Seed != 0 && s.ProperSeedOrder {
			h.Write(seedBytes(s.Seed))
		}
		h.Write(block)
		if s.Seed != 0 && !s.ProperSeedOrder {
			h.Write(seedBytes(s.Seed))
		}
		return h.Sum(nil)
	}
	h = md4.New()
	h.Write(block)
	if s.Seed != 0 {
		h.Write(seedBytes(s.Seed))
	}
	return h.Sum(nil)
}

// NewFile returns a hash for the whole-file checksum sent after a file's
// tokens: MD4 over the seed followed by the data below protocol 30,
// unseeded MD5 from 30.
func (s Strong) NewFile() hash.Hash {
	if s.Kind == MD5 {
		return md5.New()
	}
	h := md4.New()
	h.Write(seedBytes(s.Seed))
	return h
}

// NewList returns a hash for the -c checksums in the file list: unseeded.
func (s Strong) NewList() hash.Hash {
	if s.Kind == MD5 {
		return md5.New()
	}
	return md4.New()
}
