package checksum

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"math/rand/v2"
	"testing"
)

func TestRollingSignedBytes(t *testing.T) {
	// One byte 0x80 is -128 as a signed char: s1 = s2 = -128.
	if got := NewRolling([]byte{0x80}).Sum(); got != 0xff80ff80 {
		t.Fatalf("got %#x", got)
	}
	// "ab": s1 = 97+98 = 195, s2 = 97 + 195 = 292.
	if got := NewRolling([]byte("ab")).Sum(); got != 292<<16|195 {
		t.Fatalf("got %#x", got)
	}
}

func TestRollingMatchesRecompute(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 5000)
	for i := range data {
		data[i] = byte(rng.IntN(256))
	}
	const w = 700
	r := NewRolling(data[:w])
	for i := 1; i+w <= len(data); i++ {
		r.Roll(data[i-1], data[i+w-1])
		if want := NewRolling(data[i : i+w]).Sum(); r.Sum() != want {
			t.Fatalf("offset %d: %#x != %#x", i, r.Sum(), want)
		}
	}
	// Shrinking at the tail.
	start := len(data) - w
	r = NewRolling(data[start:])
	for i := start + 1; i < len(data); i++ {
		r.RollOut(data[i-1])
		if want := NewRolling(data[i:]).Sum(); r.Sum() != want {
			t.Fatalf("tail %d", i)
		}
	}
}

func TestStrong(t *testing.T) {
	// MD4 of "abc" (RFC 1320 test vector), unseeded.
	s := ForProtocol(29, 0, false)
	if got := hex.EncodeToString(s.Block([]byte("abc"))); got != "a448017aaf21d8525fc10ae87aa6729d" {
		t.Fatalf("md4 block %s", got)
	}
	// Seeded MD4 block appends the seed.
	s.Seed = 0x04030201
	if !bytes.Equal(s.Block([]byte("abc")), ForProtocol(29, 0, false).Block([]byte("abc\x01\x02\x03\x04"))) {
		t.Fatal("seeded md4 block")
	}
	// File checksum prepends the seed.
	h := s.NewFile()
	h.Write([]byte("abc"))
	if !bytes.Equal(h.Sum(nil), ForProtocol(29, 0, false).Block([]byte("\x01\x02\x03\x04abc"))) {
		t.Fatal("md4 file sum")
	}
	// MD5 with and without proper seed order.
	m := ForProtocol(31, 0x04030201, true)
	want := md5.Sum([]byte("\x01\x02\x03\x04abc"))
	if !bytes.Equal(m.Block([]byte("abc")), want[:]) {
		t.Fatal("md5 proper order")
	}
	m.ProperSeedOrder = false
	want = md5.Sum([]byte("abc\x01\x02\x03\x04"))
	if !bytes.Equal(m.Block([]byte("abc")), want[:]) {
		t.Fatal("md5 legacy order")
	}
	f := m.NewFile()
	f.Write([]byte("abc"))
	want = md5.Sum([]byte("abc"))
	if !bytes.Equal(f.Sum(nil), want[:]) {
		t.Fatal("md5 file sum must be unseeded")
	}
}
