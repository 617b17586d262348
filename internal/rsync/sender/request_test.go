package sender

import (
	"bytes"
	"testing"

	"github.com/lanmirror/lanmirror/internal/rsync/wire"
)

func TestReadRequestAndSums(t *testing.T) {
	var b bytes.Buffer
	w := wire.NewNdxCodec(31)
	_ = w.Write(&b, 5)
	_ = wire.WriteUint16(&b, itemTransfer|itemBasisTypeFollows)
	_ = wire.WriteByte(&b, 2)
	for _, v := range []int32{2, 700, 16, 100} {
		_ = wire.WriteInt32(&b, v)
	}
	for i := range 2 {
		_ = wire.WriteInt32(&b, int32(i+10))
		b.Write(bytes.Repeat([]byte{byte(i)}, 16))
	}
	_ = w.Write(&b, wire.NdxDone)

	r := wire.NewNdxCodec(31)
	q, err := readRequest(&b, r, 31)
	if err != nil {
		t.Fatal(err)
	}
	if q.Ndx != 5 || q.IFlags&itemTransfer == 0 || !q.HasBasis || q.BasisType != 2 {
		t.Fatalf("request %+v", q)
	}
	h, sums, err := readSums(&b, 16)
	if err != nil {
		t.Fatal(err)
	}
	if h != (sumHead{2, 700, 16, 100}) || len(sums) != 2 || sums[1].Weak != 11 || sums[1].Strong[0] != 1 {
		t.Fatalf("sums %+v %+v", h, sums)
	}
	q, err = readRequest(&b, r, 31)
	if err != nil || q.Ndx != wire.NdxDone {
		t.Fatalf("done: %+v %v", q, err)
	}
}

func TestReadSumsRejectsBadHeaders(t *testing.T) {
	for _, hdr := range [][4]int32{
		{-1, 700, 16, 0},
		{1, 1 << 20, 16, 0},
		{1, 0, 16, 0},
		{1, 700, 64, 0},
		{1, 700, 16, 701},
		{maxBlocks + 1, 700, 16, 0},
	} {
		var b bytes.Buffer
		for _, v := range hdr {
			_ = wire.WriteInt32(&b, v)
		}
		if _, _, err := readSums(&b, 16); err == nil {
			t.Errorf("header %v accepted", hdr)
		}
	}
	// A huge count with no data behind it fails on EOF without a huge
	// allocation.
	var b bytes.Buffer
	for _, v := range []int32{maxBlocks, 700, 16, 0} {
		_ = wire.WriteInt32(&b, v)
	}
	if _, _, err := readSums(&b, 16); err == nil {
		t.Error("truncated sums accepted")
	}
}

// FuzzRequestLoop feeds random bytes to the request reader as the
// transfer loop does; it must return an error or finish, never panic or
// hang.
func FuzzRequestLoop(f *testing.F) {
	f.Add([]byte{1, 0x00, 0x80, 1, 0, 0, 0, 0, 4, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		c := wire.NewNdxCodec(31)
		for i := 0; i <= len(data); i++ {
			q, err := readRequest(r, c, 31)
			if err != nil {
				return
			}
			if q.IFlags&itemTransfer != 0 {
				if _, _, err := readSums(r, 16); err != nil {
					return
				}
			}
		}
	})
}
