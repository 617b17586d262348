// Package checksum implements the checksums of the rsync protocol: the
// weak rolling checksum used for block matching and the strong block and
// whole-file checksums per protocol version (MD4 with the session seed for
// protocols 27 to 29, MD5 from protocol 30, and the negotiated xxh64,
// xxh3 and xxh128).
package checksum

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"hash"

	"github.com/cespare/xxhash/v2"
	"github.com/zeebo/xxh3"
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

// Kind names a strong checksum algorithm, as in the negotiation lists.
type Kind string

// Supported algorithms.
const (
	MD4    Kind = "md4"
	MD5    Kind = "md5"
	XXH64  Kind = "xxh64"
	XXH3   Kind = "xxh3"
	XXH128 Kind = "xxh128"
)

// Names lists the implemented checksum names in our order of preference
// (strongest first, as stock rsync advertises them).
func Names() []string {
	return []string{string(XXH128), string(XXH3), string(XXH64), string(MD5), string(MD4)}
}

// Strong computes block and file checksums for one session.
type Strong struct {
	Kind Kind
	// Seed is the session checksum seed.
	Seed int32
	// ProperSeedOrder puts the seed before the block data for MD5
	// (compat flag CHKSUM_SEED_FIX).
	ProperSeedOrder bool
	// Legacy marks the MD4 implied below protocol 30 (rsync's
	// CSUM_MD4_OLD): its whole-file checksum starts with the seed. An
	// "md4" negotiated by name from protocol 30 is not seeded there.
	Legacy bool
}

// ForProtocol returns the default strong checksum for a protocol version
// when nothing was negotiated.
func ForProtocol(protocol int, seed int32, seedFix bool) Strong {
	if protocol >= 30 {
		return Strong{Kind: MD5, Seed: seed, ProperSeedOrder: seedFix}
	}
	return Strong{Kind: MD4, Seed: seed, Legacy: true}
}

// ForName returns the strong checksum for a negotiated or client-chosen
// name ("auto" or "": the protocol default).
func ForName(name string, protocol int, seed int32, seedFix bool) (Strong, error) {
	switch name {
	case "", "auto":
		return ForProtocol(protocol, seed, seedFix), nil
	}
	switch k := Kind(name); k {
	case MD4, MD5, XXH64, XXH3, XXH128:
		return Strong{Kind: k, Seed: seed, ProperSeedOrder: seedFix}, nil
	}
	return Strong{}, fmt.Errorf("checksum %q is not supported", name)
}

// Len is the full length of the digest in bytes.
func (s Strong) Len() int {
	switch s.Kind {
	case XXH64, XXH3:
		return 8
	}
	return 16
}

func seedBytes(seed int32) []byte {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], uint32(seed))
	return b[:]
}

// xxhSeed converts the session seed as C does (int to a 64-bit unsigned
// seed: sign extension).
func xxhSeed(seed int32) uint64 { return uint64(int64(seed)) }

func le64(v uint64) []byte { return appendLE64(make([]byte, 0, 16), v) }

func le128(v xxh3.Uint128) []byte { return appendLE128(make([]byte, 0, 16), v) }

func appendLE64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }

func appendLE128(b []byte, v xxh3.Uint128) []byte {
	return binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(b, v.Lo), v.Hi)
}

// Block returns the strong checksum of one block as the receiver computes
// it for its block sums.
func (s Strong) Block(block []byte) []byte {
	switch s.Kind {
	case XXH64:
		d := xxhash.NewWithSeed(xxhSeed(s.Seed))
		d.Write(block)
		return le64(d.Sum64())
	case XXH3:
		return le64(xxh3.HashSeed(block, xxhSeed(s.Seed)))
	case XXH128:
		return le128(xxh3.Hash128Seed(block, xxhSeed(s.Seed)))
	case MD5:
		h := md5.New()
		if s.Seed != 0 && s.ProperSeedOrder {
			h.Write(seedBytes(s.Seed))
		}
		h.Write(block)
		if s.Seed != 0 && !s.ProperSeedOrder {
			h.Write(seedBytes(s.Seed))
		}
		return h.Sum(nil)
	}
	h := md4.New()
	h.Write(block)
	if s.Seed != 0 {
		h.Write(seedBytes(s.Seed))
	}
	return h.Sum(nil)
}

// NewFile returns a hash for the whole-file checksum sent after a file's
// tokens: MD4 over the seed followed by the data below protocol 30,
// unseeded from 30.
func (s Strong) NewFile() hash.Hash {
	h := s.NewList()
	if s.Kind == MD4 && s.Legacy {
		h.Write(seedBytes(s.Seed))
	}
	return h
}

// ResetFile makes h, a hash returned by NewFile for the same Strong, ready
// for the next file (as if NewFile had just returned it), so that a
// session can reuse one hash for all its files.
func (s Strong) ResetFile(h hash.Hash) {
	h.Reset()
	if s.Kind == MD4 && s.Legacy {
		h.Write(seedBytes(s.Seed))
	}
}

// NewList returns a hash for the -c checksums in the file list: unseeded.
// Its Sum has the byte order rsync sends (little endian for xxh*).
func (s Strong) NewList() hash.Hash {
	switch s.Kind {
	case MD5:
		return md5.New()
	case XXH64:
		return &leHash{Hash: xxhash.New(), size: 8, sum: func(h hash.Hash, b []byte) []byte { return appendLE64(b, h.(*xxhash.Digest).Sum64()) }}
	case XXH3:
		return &leHash{Hash: xxh3.New(), size: 8, sum: func(h hash.Hash, b []byte) []byte { return appendLE64(b, h.(*xxh3.Hasher).Sum64()) }}
	case XXH128:
		return &leHash{Hash: xxh3.New(), size: 16, sum: func(h hash.Hash, b []byte) []byte { return appendLE128(b, h.(*xxh3.Hasher).Sum128()) }}
	}
	return md4.New()
}

// leHash adapts a streaming xxhash to rsync's little-endian digest bytes.
type leHash struct {
	hash.Hash
	size int
	sum  func(h hash.Hash, b []byte) []byte // appends h's digest to b
}

// Sum appends the little-endian digest to b.
func (l *leHash) Sum(b []byte) []byte { return l.sum(l.Hash, b) }

// Size returns the digest length.
func (l *leHash) Size() int { return l.size }
