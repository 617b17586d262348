package token

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func TestPlain(t *testing.T) {
	var buf bytes.Buffer
	w := Plain{W: &buf}
	lit := bytes.Repeat([]byte{'x'}, ChunkSize+10)
	if err := w.Literal(lit); err != nil {
		t.Fatal(err)
	}
	if err := w.Match(3, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.End(); err != nil {
		t.Fatal(err)
	}
	if err := w.Match(-1, nil); err == nil {
		t.Fatal("negative block accepted")
	}
	b := buf.Bytes()
	read := func() int32 {
		v := int32(binary.LittleEndian.Uint32(b))
		b = b[4:]
		return v
	}
	if n := read(); n != ChunkSize {
		t.Fatalf("first chunk %d", n)
	}
	b = b[ChunkSize:]
	if n := read(); n != 10 {
		t.Fatalf("second chunk %d", n)
	}
	b = b[10:]
	if n := read(); n != -4 {
		t.Fatalf("match token %d", n)
	}
	if n := read(); n != 0 || len(b) != 0 {
		t.Fatalf("end token %d, %d left", n, len(b))
	}
}
