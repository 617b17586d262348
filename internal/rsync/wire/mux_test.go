package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"testing"
	"testing/iotest"
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

// TestSmallReadsAnyReader: the integer readers give the same values and
// errors (io.EOF at a clean end, io.ErrUnexpectedEOF inside a value)
// whether they read from an io.ByteReader, from a plain reader returning
// a byte at a time, or from a MuxReader whose frames split the values
// and carry messages between them (ReadByte across frames).
func TestSmallReadsAnyReader(t *testing.T) {
	var enc bytes.Buffer
	WriteInt32(&enc, -123456789)
	WriteUint16(&enc, 0xBEEF)
	WriteVarint(&enc, 1<<30)
	WriteVarlong(&enc, 1<<40+5, 3)
	nc := NewNdxCodec(31)
	for _, n := range []int32{0, 5, 300, 70000, NdxDone, -101} {
		nc.Write(&enc, n)
	}
	enc.WriteByte(0x42)
	stream := enc.Bytes()

	type result struct {
		vals []int64
		err  error
	}
	readAll := func(r io.Reader) result {
		var res result
		add := func(v int64, err error) bool {
			if err != nil {
				res.err = err
				return false
			}
			res.vals = append(res.vals, v)
			return true
		}
		v32, err := ReadInt32(r)
		if !add(int64(v32), err) {
			return res
		}
		v16, err := ReadUint16(r)
		if !add(int64(v16), err) {
			return res
		}
		vi, err := ReadVarint(r)
		if !add(int64(vi), err) {
			return res
		}
		vl, err := ReadVarlong(r, 3)
		if !add(vl, err) {
			return res
		}
		nc := NewNdxCodec(31)
		for range 6 {
			n, err := nc.Read(r)
			if !add(int64(n), err) {
				return res
			}
		}
		b, err := ReadByte(r)
		if !add(int64(b), err) {
			return res
		}
		_, err = ReadByte(r)
		add(0, err) // the end
		return res
	}
	// muxed frames the stream in pieces of 1, 2 and 3 bytes with an info
	// message after each.
	muxed := func(data []byte) []byte {
		var out bytes.Buffer
		w := NewMuxWriter(&out)
		for i, k := 0, 1; i < len(data); i, k = i+k, k%3+1 {
			w.Write(data[i:min(len(data), i+k)])
			w.Flush()
			w.WriteMsg(MsgInfo, []byte("x"))
			w.Flush()
		}
		return out.Bytes()
	}
	for cut := len(stream); cut >= 0; cut-- {
		data := stream[:cut]
		want := readAll(bytes.NewReader(data))
		if cut == len(stream) && (len(want.vals) != 11 || want.err != io.EOF) {
			t.Fatalf("whole stream: %v, %v", want.vals, want.err)
		}
		isEOF := func(err error) [2]bool {
			return [2]bool{errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF)}
		}
		if isEOF(want.err) == [2]bool{} {
			t.Fatalf("cut at %d: %v, want an EOF", cut, want.err)
		}
		mr := NewMuxReader(bytes.NewReader(muxed(data)))
		msgs := 0
		mr.OnMsg = func(MsgCode, []byte) error { msgs++; return nil }
		for name, r := range map[string]io.Reader{"one byte at a time": iotest.OneByteReader(bytes.NewReader(data)), "mux": mr} {
			got := readAll(r)
			if fmt.Sprint(got.vals) != fmt.Sprint(want.vals) || isEOF(got.err) != isEOF(want.err) {
				t.Errorf("cut at %d, %s: %v, %v; want %v, %v", cut, name, got.vals, got.err, want.vals, want.err)
			}
		}
		if cut > 0 && msgs == 0 {
			t.Errorf("cut at %d: no message seen through the mux", cut)
		}
	}
}
