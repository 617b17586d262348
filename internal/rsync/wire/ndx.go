package wire

import (
	"fmt"
	"io"
)

// NdxDone is the file index that ends a phase or the transfer.
const NdxDone = -1

// NdxCodec reads and writes file indexes. Below protocol 30 an index is a
// plain int32; from 30 it is delta-coded against the previous positive or
// negative index (io.c read_ndx/write_ndx). Each direction of a session
// needs its own codec, as the deltas are stateful.
type NdxCodec struct {
	Protocol int
	prevPos  int32
	prevNeg  int32
	scratch  [8]byte // Write's buffer (a local one would escape to the heap)
}

// NewNdxCodec returns a codec in its initial state.
func NewNdxCodec(protocol int) *NdxCodec {
	return &NdxCodec{Protocol: protocol, prevPos: -1, prevNeg: 1}
}

// Append appends the encoding of ndx to dst.
func (c *NdxCodec) Append(dst []byte, ndx int32) []byte {
	if c.Protocol < 30 {
		return append(dst, byte(ndx), byte(ndx>>8), byte(ndx>>16), byte(ndx>>24))
	}
	var diff int32
	switch {
	case ndx >= 0:
		diff = ndx - c.prevPos
		c.prevPos = ndx
	case ndx == NdxDone:
		return append(dst, 0)
	default:
		dst = append(dst, 0xFF)
		ndx = -ndx
		diff = ndx - c.prevNeg
		c.prevNeg = ndx
	}
	switch {
	case diff > 0 && diff < 0xFE:
		return append(dst, byte(diff))
	case diff < 0 || diff > 0x7FFF:
		return append(dst, 0xFE, byte(ndx>>24)|0x80, byte(ndx), byte(ndx>>8), byte(ndx>>16))
	default:
		return append(dst, 0xFE, byte(diff>>8), byte(diff))
	}
}

// Write writes ndx to w.
func (c *NdxCodec) Write(w io.Writer, ndx int32) error {
	_, err := w.Write(c.Append(c.scratch[:0], ndx))
	return err
}

// Read reads one index from r.
func (c *NdxCodec) Read(r io.Reader) (int32, error) {
	if c.Protocol < 30 {
		return ReadInt32(r)
	}
	var b [4]byte
	if err := readFull(r, b[:1]); err != nil {
		return 0, fmt.Errorf("read file index: %w", err)
	}
	prev := &c.prevPos
	neg := false
	switch b[0] {
	case 0:
		return NdxDone, nil
	case 0xFF:
		if err := readFull(r, b[:1]); err != nil {
			return 0, fmt.Errorf("read file index: %w", err)
		}
		prev = &c.prevNeg
		neg = true
	}
	var num int32
	if b[0] == 0xFE {
		if err := readFull(r, b[:2]); err != nil {
			return 0, fmt.Errorf("read file index: %w", err)
		}
		if b[0]&0x80 != 0 {
			hi := b[0] &^ 0x80
			lo := b[1]
			if err := readFull(r, b[:2]); err != nil {
				return 0, fmt.Errorf("read file index: %w", err)
			}
			num = int32(uint32(lo) | uint32(b[0])<<8 | uint32(b[1])<<16 | uint32(hi)<<24)
		} else {
			num = int32(b[0])<<8 | int32(b[1]) + *prev
		}
	} else {
		num = int32(b[0]) + *prev
	}
	*prev = num
	if neg {
		num = -num
	}
	return num, nil
}
