package wire

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
)

func TestMuxRoundTrip(t *testing.T) {
	var out bytes.Buffer
	w := NewMuxWriter(&out)
	big := bytes.Repeat([]byte("abcdefgh"), 10000) // 80000 bytes, spans frames
	if _, err := w.Write(big); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteMsg(MsgInfo, []byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("tail")); err != nil {
		t.Fatal(err)
	}
	if err := w.KeepAlive(false); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	// First header: data frame of 32 KiB.
	hdr := binary.LittleEndian.Uint32(out.Bytes()[:4])
	if hdr>>24 != 7 || hdr&0xFFFFFF != dataChunk {
		t.Fatalf("first header %#x", hdr)
	}
	var msgs []string
	r := NewMuxReader(bytes.NewReader(out.Bytes()))
	r.OnMsg = func(c MsgCode, p []byte) error {
		if c != MsgInfo {
			t.Errorf("code %d", c)
		}
		msgs = append(msgs, string(p))
		return nil
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	want := append(append([]byte{}, big...), "tail"...)
	if !bytes.Equal(got, want) {
		t.Fatalf("data mismatch: %d vs %d bytes", len(got), len(want))
	}
	if len(msgs) != 1 || msgs[0] != "hello\n" {
		t.Fatalf("msgs %q", msgs)
	}
}

func TestMuxReaderRejectsBadInput(t *testing.T) {
	// tag below the multiplex base
	r := NewMuxReader(bytes.NewReader([]byte{1, 0, 0, 0x05}))
	if _, err := r.Read(make([]byte, 4)); err == nil {
		t.Fatal("want error for bad tag")
	}
	// oversized message
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], uint32(7+int(MsgInfo))<<24|0xFFFFFF)
	r = NewMuxReader(bytes.NewReader(b[:]))
	if _, err := r.Read(make([]byte, 4)); err == nil {
		t.Fatal("want error for oversized message")
	}
	// fatal exit from client
	binary.LittleEndian.PutUint32(b[:], uint32(7+int(MsgErrorExit))<<24)
	r = NewMuxReader(bytes.NewReader(b[:]))
	if _, err := r.Read(make([]byte, 4)); err != ErrClientError {
		t.Fatalf("got %v", err)
	}
}

func FuzzMuxReader(f *testing.F) {
	f.Add([]byte{4, 0, 0, 7, 'a', 'b', 'c', 'd'})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewMuxReader(bytes.NewReader(data))
		_, _ = io.Copy(io.Discard, io.LimitReader(r, 1<<20))
	})
}
