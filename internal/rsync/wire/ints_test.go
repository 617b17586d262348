package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
)

func TestVarintVectors(t *testing.T) {
	cases := []struct {
		v   int32
		hex string
	}{
		{0, "00"},
		{1, "01"},
		{0x7F, "7f"},
		{0x80, "8080"},
		{0x3FFF, "bfff"},
		{0x4000, "c00040"},
		{0x1FFFFF, "dfffff"},
		{0x200000, "e0000020"},
		{0x0FFFFFFF, "efffffff"},
		{0x10000000, "f000000010"},
		{-1, "f0ffffffff"},
		{math.MaxInt32, "f0ffffff7f"},
	}
	for _, c := range cases {
		var b bytes.Buffer
		if err := WriteVarint(&b, c.v); err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(b.Bytes()); got != c.hex {
			t.Errorf("WriteVarint(%#x) = %s, want %s", c.v, got, c.hex)
		}
		if got := hex.EncodeToString(AppendVarint(nil, c.v)); got != c.hex {
			t.Errorf("AppendVarint(%#x) = %s, want %s", c.v, got, c.hex)
		}
		got, err := ReadVarint(&b)
		if err != nil || got != c.v {
			t.Errorf("ReadVarint(%s) = %#x, %v; want %#x", c.hex, got, err, c.v)
		}
		if b.Len() != 0 {
			t.Errorf("ReadVarint(%s) left %d bytes", c.hex, b.Len())
		}
	}
}

func TestVarlongVectors(t *testing.T) {
	cases := []struct {
		v   int64
		min int
		hex string
	}{
		{0, 3, "000000"},
		{5, 3, "000500"},            // the lead byte carries the top byte
		{0x1FFFFF, 3, "1fffff"},     // top byte 0x1f fits in 7 bits
		{0x800000, 3, "80000080"},   // top byte 0x80 needs a marker byte
		{0x3FFFFFFF, 3, "bfffffff"}, // 4 bytes used, top 0x3f fits under one marker bit
		{0x6553F100, 4, "6500f153"},
		{-1, 3, "fcffffffffffffffff"},
		{math.MaxInt64, 4, "f8ffffffffffffff7f"},
	}
	for _, c := range cases {
		var b bytes.Buffer
		if err := WriteVarlong(&b, c.v, c.min); err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(b.Bytes()); got != c.hex {
			t.Errorf("WriteVarlong(%#x,%d) = %s, want %s", c.v, c.min, got, c.hex)
		}
		got, err := ReadVarlong(&b, c.min)
		if err != nil || got != c.v {
			t.Errorf("ReadVarlong(%s,%d) = %#x, %v; want %#x", c.hex, c.min, got, err, c.v)
		}
		if b.Len() != 0 {
			t.Errorf("ReadVarlong(%s) left %d bytes", c.hex, b.Len())
		}
	}
}

func TestVarRoundTrip(t *testing.T) {
	vals := []int64{0, 1, 127, 128, 255, 256, 1<<16 - 1, 1 << 16, 1<<24 - 1, 1 << 24, 1<<31 - 1, 1 << 31,
		1<<32 - 1, 1 << 32, 1 << 40, 1 << 48, 1 << 56, math.MaxInt64, -1, -2, math.MinInt64, math.MinInt32}
	for _, v := range vals {
		for _, min := range []int{3, 4, 5, 8} {
			var b bytes.Buffer
			if err := WriteVarlong(&b, v, min); err != nil {
				t.Fatal(err)
			}
			if b.Len() < min || b.Len() > 9 {
				t.Errorf("varlong(%d,%d) is %d bytes", v, min, b.Len())
			}
			got, err := ReadVarlong(&b, min)
			if err != nil || got != v {
				t.Errorf("varlong round trip %d min %d: %d, %v", v, min, got, err)
			}
		}
		v32 := int32(v)
		var b bytes.Buffer
		_ = WriteVarint(&b, v32)
		got, err := ReadVarint(&b)
		if err != nil || got != v32 {
			t.Errorf("varint round trip %d: %d, %v", v32, got, err)
		}
	}
}

func TestInt32AndLongint(t *testing.T) {
	var b bytes.Buffer
	_ = WriteInt32(&b, -2)
	if hex.EncodeToString(b.Bytes()) != "feffffff" {
		t.Fatalf("WriteInt32(-2) = %x", b.Bytes())
	}
	if v, err := ReadInt32(&b); err != nil || v != -2 {
		t.Fatalf("ReadInt32 = %d, %v", v, err)
	}
	for _, c := range []struct {
		v   int64
		hex string
	}{
		{5, "05000000"},
		{0x7FFFFFFF, "ffffff7f"},
		{0x80000000, "ffffffff0000008000000000"},
		{3 << 32, "ffffffff0000000003000000"},
		{-5, "fffffffffbffffffffffffff"},
	} {
		b.Reset()
		if err := WriteInt64(&b, c.v, 29); err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(b.Bytes()); got != c.hex {
			t.Errorf("WriteInt64(%d, 29) = %s, want %s", c.v, got, c.hex)
		}
		if v, err := ReadInt64(&b, 29); err != nil || v != c.v {
			t.Errorf("ReadInt64(%s, 29) = %d, %v", c.hex, v, err)
		}
	}
	b.Reset()
	_ = WriteInt64(&b, 5, 30)
	if hex.EncodeToString(b.Bytes()) != "000500" {
		t.Errorf("WriteInt64(5, 30) = %x, want varlong 000500", b.Bytes())
	}
	if v, err := ReadInt64(&b, 31); err != nil || v != 5 {
		t.Errorf("ReadInt64(31) = %d, %v", v, err)
	}
	b.Reset()
	_ = WriteUint16(&b, 0x1234)
	if hex.EncodeToString(b.Bytes()) != "3412" {
		t.Errorf("WriteUint16 = %x", b.Bytes())
	}
	if v, err := ReadUint16(&b); err != nil || v != 0x1234 {
		t.Errorf("ReadUint16 = %x, %v", v, err)
	}
}

func TestVstring(t *testing.T) {
	for _, s := range []string{"", "md5 md4", strings.Repeat("x", 0x7F), strings.Repeat("y", 0x80), strings.Repeat("z", 0x7FFF)} {
		var b bytes.Buffer
		if err := WriteVstring(&b, s); err != nil {
			t.Fatal(err)
		}
		want := 1
		if len(s) > 0x7F {
			want = 2
		}
		if b.Len() != len(s)+want {
			t.Errorf("vstring of %d bytes encoded in %d", len(s), b.Len())
		}
		got, err := ReadVstring(&b, 0)
		if err != nil || got != s {
			t.Errorf("vstring round trip of %d bytes: %d bytes, %v", len(s), len(got), err)
		}
	}
	var b bytes.Buffer
	_ = WriteVstring(&b, strings.Repeat("y", 0x80))
	if hex.EncodeToString(b.Bytes()[:2]) != "8080" {
		t.Errorf("vstring length prefix %x, want 8080", b.Bytes()[:2])
	}
	if _, err := ReadVstring(&b, 100); !errors.Is(err, ErrOverflow) {
		t.Errorf("ReadVstring over limit: %v, want ErrOverflow", err)
	}
	if err := WriteVstring(io.Discard, strings.Repeat("a", 0x8000)); !errors.Is(err, ErrOverflow) {
		t.Errorf("WriteVstring too long: %v", err)
	}
}

func TestTruncatedAndOverflow(t *testing.T) {
	for _, h := range []string{"80", "c000", "f0ffff", "f8ffffffffff"} {
		raw, _ := hex.DecodeString(h)
		if _, err := ReadVarint(bytes.NewReader(raw)); err == nil {
			t.Errorf("ReadVarint(%s) accepted", h)
		}
	}
	raw, _ := hex.DecodeString("f8ffffffffff")
	if _, err := ReadVarint(bytes.NewReader(raw)); !errors.Is(err, ErrOverflow) {
		t.Errorf("ReadVarint 6-byte: %v, want ErrOverflow", err)
	}
	raw, _ = hex.DecodeString("f1ffffffff") // value bits beyond 32
	if _, err := ReadVarint(bytes.NewReader(raw)); !errors.Is(err, ErrOverflow) {
		t.Errorf("ReadVarint 33-bit: %v, want ErrOverflow", err)
	}
	if _, err := ReadVarlong(bytes.NewReader([]byte{0xff, 0xff}), 3); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("ReadVarlong short: %v", err)
	}
	if _, err := ReadLongint(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff, 1})); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("ReadLongint short: %v", err)
	}
}

func FuzzReadVar(f *testing.F) {
	f.Add([]byte{0x80, 0x80}, uint8(3))
	f.Add([]byte{0xfc, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, min uint8) {
		m := int(min%6) + 3
		if v, err := ReadVarint(bytes.NewReader(data)); err == nil {
			var b bytes.Buffer
			_ = WriteVarint(&b, v)
			if v2, err := ReadVarint(&b); err != nil || v2 != v {
				t.Fatalf("varint %d re-read as %d, %v", v, v2, err)
			}
		}
		if v, err := ReadVarlong(bytes.NewReader(data), m); err == nil {
			var b bytes.Buffer
			_ = WriteVarlong(&b, v, m)
			if v2, err := ReadVarlong(&b, m); err != nil || v2 != v {
				t.Fatalf("varlong %d re-read as %d, %v", v, v2, err)
			}
		}
		_, _ = ReadVstring(bytes.NewReader(data), 0)
	})
}
