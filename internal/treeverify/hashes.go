package treeverify

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"hash"

	"golang.org/x/crypto/blake2b"
	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/ripemd160" //nolint:staticcheck // GLEP 74 names RMD160; only checked when a Manifest uses it
)

// hashKind is a Manifest hash name lanmirror can compute.
type hashKind uint8

const (
	hashNone hashKind = iota
	hashBLAKE2B
	hashBLAKE2S
	hashSHA512
	hashSHA256
	hashSHA3_256
	hashSHA3_512
	hashRMD160
	hashSHA1
	hashMD5
	numHashKinds
)

// hashKinds maps the Manifest names (GLEP 74 and gemato) to kinds. Other
// names (WHIRLPOOL) are not checked; an entry needs at least one known one.
var hashKinds = map[string]hashKind{
	"BLAKE2B":  hashBLAKE2B,
	"BLAKE2S":  hashBLAKE2S,
	"SHA512":   hashSHA512,
	"SHA256":   hashSHA256,
	"SHA3_256": hashSHA3_256,
	"SHA3_512": hashSHA3_512,
	"RMD160":   hashRMD160,
	"SHA1":     hashSHA1,
	"MD5":      hashMD5,
}

var hashNames = [numHashKinds]string{"", "BLAKE2B", "BLAKE2S", "SHA512", "SHA256", "SHA3_256", "SHA3_512", "RMD160", "SHA1", "MD5"}

func (k hashKind) String() string { return hashNames[k] }

// secure reports whether k counts as a cryptographic hash for a signed
// tree (gemato's rule: anything but MD5 and SHA1).
func (k hashKind) secure() bool { return k != hashMD5 && k != hashSHA1 }

func newHash(k hashKind) hash.Hash {
	switch k {
	case hashBLAKE2B:
		h, _ := blake2b.New512(nil) // fails only with a key
		return h
	case hashBLAKE2S:
		h, _ := blake2s.New256(nil)
		return h
	case hashSHA512:
		return sha512.New()
	case hashSHA256:
		return sha256.New()
	case hashSHA3_256:
		return sha3.New256()
	case hashSHA3_512:
		return sha3.New512()
	case hashRMD160:
		return ripemd160.New()
	case hashSHA1:
		return sha1.New()
	case hashMD5:
		return md5.New()
	}
	return nil
}

// digest is one expected digest of an entry.
type digest struct {
	kind hashKind
	hex  string // lowercase
}

// hasherSet keeps one reusable hash.Hash per kind for a worker.
type hasherSet struct {
	h   [numHashKinds]hash.Hash
	sum []byte
	hex []byte
}

func (s *hasherSet) get(k hashKind) hash.Hash {
	if s.h[k] == nil {
		s.h[k] = newHash(k)
	}
	h := s.h[k]
	h.Reset()
	return h
}
