package wire

import (
	"bytes"
	"testing"
)

func TestNdxRoundTrip(t *testing.T) {
	seq := []int32{0, 1, 2, 5, 300, 299, 40000, 40001, 7, NdxDone, -2, -3, -101, 1 << 30, 0, NdxDone}
	for _, proto := range []int{29, 30, 31} {
		w := NewNdxCodec(proto)
		var buf bytes.Buffer
		for _, n := range seq {
			if err := w.Write(&buf, n); err != nil {
				t.Fatal(err)
			}
		}
		r := NewNdxCodec(proto)
		for i, want := range seq {
			got, err := r.Read(&buf)
			if err != nil {
				t.Fatalf("proto %d item %d: %v", proto, i, err)
			}
			if got != want {
				t.Fatalf("proto %d item %d: got %d want %d", proto, i, got, want)
			}
		}
	}
}

func TestNdxEncoding(t *testing.T) {
	c := NewNdxCodec(30)
	// First positive index 0: diff 1 from the initial -1.
	if got := c.Append(nil, 0); !bytes.Equal(got, []byte{1}) {
		t.Fatalf("ndx 0: % x", got)
	}
	if got := c.Append(nil, NdxDone); !bytes.Equal(got, []byte{0}) {
		t.Fatalf("done: % x", got)
	}
	// 0 -> 1000: diff 1000 in two bytes big-endian.
	if got := c.Append(nil, 1000); !bytes.Equal(got, []byte{0xFE, 0x03, 0xE8}) {
		t.Fatalf("ndx 1000: % x", got)
	}
}

func FuzzNdxRead(f *testing.F) {
	f.Add([]byte{1, 0xFE, 0x03, 0xE8, 0xFF, 2, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		c := NewNdxCodec(31)
		r := bytes.NewReader(data)
		for i := 0; i < len(data)+1; i++ {
			if _, err := c.Read(r); err != nil {
				return
			}
		}
	})
}
