package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
)

// ErrOverflow reports a variable-length integer or string whose encoded
// length exceeds what the protocol allows.
var ErrOverflow = errors.New("rsync wire: integer or length overflow")

// MaxVstring is the longest string WriteVstring can encode (15 bits of length).
const MaxVstring = 0x7FFF

// readFull is io.ReadFull for the package's small fixed-size reads. From
// an io.ByteReader (MuxReader, bufio.Reader) it reads byte by byte, so
// that b never reaches an interface call and a caller's array stays on
// its stack (a session reads several integers per file); from another
// reader it reads through a temporary buffer.
func readFull(r io.Reader, b []byte) error {
	if br, ok := r.(io.ByteReader); ok {
		for i := range b {
			c, err := br.ReadByte()
			if err != nil {
				if i > 0 && err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
			b[i] = c
		}
		return nil
	}
	tmp := make([]byte, len(b))
	n, err := io.ReadFull(r, tmp)
	copy(b, tmp[:n])
	return err
}

// appender is a buffered writer whose free buffer can be appended to
// (bufio.Writer): the integer writers encode into it, where a buffer of
// their own would escape to the heap through the io.Writer call.
type appender interface {
	AvailableBuffer() []byte
}

func writeAppended(w io.Writer, b []byte) error {
	_, err := w.Write(b)
	return err
}

// WriteByte writes a single byte.
func WriteByte(w io.Writer, b byte) error {
	_, err := w.Write([]byte{b})
	return err
}

// ReadByte reads a single byte.
func ReadByte(r io.Reader) (byte, error) {
	var b [1]byte
	if err := readFull(r, b[:]); err != nil {
		return 0, err
	}
	return b[0], nil
}

// WriteUint16 writes a little-endian 16-bit integer (rsync's "shortint").
func WriteUint16(w io.Writer, v uint16) error {
	if aw, ok := w.(appender); ok {
		return writeAppended(w, binary.LittleEndian.AppendUint16(aw.AvailableBuffer(), v))
	}
	var b [2]byte
	binary.LittleEndian.PutUint16(b[:], v)
	_, err := w.Write(b[:])
	return err
}

// ReadUint16 reads a little-endian 16-bit integer.
func ReadUint16(r io.Reader) (uint16, error) {
	var b [2]byte
	if err := readFull(r, b[:]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(b[:]), nil
}

// WriteInt32 writes a little-endian 32-bit integer.
func WriteInt32(w io.Writer, v int32) error {
	if aw, ok := w.(appender); ok {
		return writeAppended(w, binary.LittleEndian.AppendUint32(aw.AvailableBuffer(), uint32(v)))
	}
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], uint32(v))
	_, err := w.Write(b[:])
	return err
}

// ReadInt32 reads a little-endian 32-bit integer.
func ReadInt32(r io.Reader) (int32, error) {
	var b [4]byte
	if err := readFull(r, b[:]); err != nil {
		return 0, err
	}
	return int32(binary.LittleEndian.Uint32(b[:])), nil
}

// WriteLongint writes a 64-bit value in the pre-30 form: values in
// 0..0x7FFFFFFF as a plain int32, anything else as the int32 -1 marker
// followed by the full value as a little-endian int64.
func WriteLongint(w io.Writer, v int64) error {
	if v >= 0 && v <= 0x7FFFFFFF {
		return WriteInt32(w, int32(v))
	}
	var b [12]byte
	binary.LittleEndian.PutUint32(b[:4], 0xFFFFFFFF)
	binary.LittleEndian.PutUint64(b[4:], uint64(v))
	_, err := w.Write(b[:])
	return err
}

// ReadLongint reads a value written by WriteLongint.
func ReadLongint(r io.Reader) (int64, error) {
	v, err := ReadInt32(r)
	if err != nil {
		return 0, err
	}
	if v != -1 {
		return int64(v), nil
	}
	var b [8]byte
	if err := readFull(r, b[:]); err != nil {
		return 0, fmt.Errorf("reading long int: %w", noEOF(err))
	}
	return int64(binary.LittleEndian.Uint64(b[:])), nil
}

// WriteInt64 writes a 64-bit value the way the given protocol expects for
// sizes and stats: below 30 in the pre-30 longint form (see WriteLongint),
// from 30 as a varlong with at least 3 bytes.
func WriteInt64(w io.Writer, v int64, protocol int) error {
	if protocol < 30 {
		return WriteLongint(w, v)
	}
	return WriteVarlong(w, v, 3)
}

// ReadInt64 reads a value written by WriteInt64 with the same protocol.
func ReadInt64(r io.Reader, protocol int) (int64, error) {
	if protocol < 30 {
		return ReadLongint(r)
	}
	return ReadVarlong(r, 3)
}

// encodeVar encodes the low n bytes of v (n = 4 or 8) in rsync's variable
// length form with minBytes bytes always present. The first byte carries,
// in its high bits, one set bit per byte beyond minBytes, then a clear
// bit, then as many high-order value bits as still fit; the remaining
// bytes follow in little-endian order.
func encodeVar(dst []byte, v uint64, n, minBytes int) []byte {
	var le [8]byte
	binary.LittleEndian.PutUint64(le[:], v)
	// used = number of significant bytes, at least minBytes.
	used := n
	for used > minBytes && le[used-1] == 0 {
		used--
	}
	extra := used - minBytes // marker bits needed if the top byte fits in the lead
	top := le[used-1]
	room := uint(7 - extra) // value bits left in the lead byte
	if extra >= 0 && top < 1<<room {
		lead := top | ^byte(0xFF>>uint(extra))
		if extra == 0 {
			lead = top
		}
		dst = append(dst, lead)
		return append(dst, le[:used-1]...)
	}
	// The top byte does not fit next to the marker bits: send it in full
	// and use one more marker bit; the lead then carries no value bits.
	lead := ^byte(0xFF >> uint(extra+1))
	dst = append(dst, lead)
	return append(dst, le[:used]...)
}

// leadExtra returns how many bytes follow a lead byte beyond the minimum:
// the count of its leading one bits, at most 6.
func leadExtra(b byte) int {
	n := bits.LeadingZeros8(^b)
	if n > 6 {
		n = 6
	}
	return n
}

// decodeVar reads a value encoded by encodeVar; maxBytes bounds the
// number of value bytes (4 for varint, 8 for varlong).
func decodeVar(r io.Reader, minBytes, maxBytes int) (uint64, error) {
	var buf [9]byte
	if err := readFull(r, buf[:minBytes]); err != nil {
		return 0, err
	}
	lead := buf[0]
	extra := leadExtra(lead)
	if minBytes+extra > maxBytes+1 {
		return 0, fmt.Errorf("variable-length integer with %d bytes: %w", minBytes+extra, ErrOverflow)
	}
	var le [9]byte
	copy(le[:], buf[1:minBytes])
	low := minBytes - 1
	if extra > 0 {
		if err := readFull(r, le[low:low+extra]); err != nil {
			return 0, noEOF(err)
		}
	}
	le[low+extra] = lead & (0xFF >> uint(extra+1))
	if low+extra >= maxBytes && le[low+extra] != 0 {
		return 0, fmt.Errorf("variable-length integer too large: %w", ErrOverflow)
	}
	return binary.LittleEndian.Uint64(le[:8]), nil
}

// WriteVarint writes a 32-bit integer in rsync's varint form (1 to 5 bytes).
func WriteVarint(w io.Writer, v int32) error {
	if aw, ok := w.(appender); ok {
		return writeAppended(w, AppendVarint(aw.AvailableBuffer(), v))
	}
	var b [9]byte
	_, err := w.Write(encodeVar(b[:0], uint64(uint32(v)), 4, 1))
	return err
}

// AppendVarint appends the varint encoding of v to dst.
func AppendVarint(dst []byte, v int32) []byte {
	return encodeVar(dst, uint64(uint32(v)), 4, 1)
}

// ReadVarint reads a varint written by WriteVarint.
func ReadVarint(r io.Reader) (int32, error) {
	v, err := decodeVar(r, 1, 4)
	if err != nil {
		return 0, err
	}
	return int32(uint32(v)), nil
}

// WriteVarlong writes a 64-bit integer in rsync's varlong form with at
// least minBytes bytes (1..8; the protocol uses 3 for sizes, 4 for times).
func WriteVarlong(w io.Writer, v int64, minBytes int) error {
	if minBytes < 1 || minBytes > 8 {
		return fmt.Errorf("varlong min bytes %d: %w", minBytes, ErrOverflow)
	}
	if aw, ok := w.(appender); ok {
		return writeAppended(w, encodeVar(aw.AvailableBuffer(), uint64(v), 8, minBytes))
	}
	var b [10]byte
	_, err := w.Write(encodeVar(b[:0], uint64(v), 8, minBytes))
	return err
}

// AppendVarlong appends the varlong encoding of v with at least minBytes
// bytes (1..8) to dst.
func AppendVarlong(dst []byte, v int64, minBytes int) []byte {
	return encodeVar(dst, uint64(v), 8, minBytes)
}

// ReadVarlong reads a varlong written with the same minBytes.
func ReadVarlong(r io.Reader, minBytes int) (int64, error) {
	if minBytes < 1 || minBytes > 8 {
		return 0, fmt.Errorf("varlong min bytes %d: %w", minBytes, ErrOverflow)
	}
	v, err := decodeVar(r, minBytes, 8)
	if err != nil {
		return 0, err
	}
	return int64(v), nil
}

// WriteVstring writes a length-prefixed string as used in the protocol
// 30+ negotiation lists: one length byte below 0x80, else two bytes with
// the high bit of the first set (big-endian 15-bit length).
func WriteVstring(w io.Writer, s string) error {
	n := len(s)
	if n > MaxVstring {
		return fmt.Errorf("string of %d bytes: %w", n, ErrOverflow)
	}
	b := make([]byte, 0, n+2)
	if n > 0x7F {
		b = append(b, byte(n>>8)|0x80, byte(n))
	} else {
		b = append(b, byte(n))
	}
	b = append(b, s...)
	_, err := w.Write(b)
	return err
}

// ReadVstring reads a string written by WriteVstring, refusing lengths
// above max (max <= 0 means MaxVstring).
func ReadVstring(r io.Reader, max int) (string, error) {
	if max <= 0 || max > MaxVstring {
		max = MaxVstring
	}
	b0, err := ReadByte(r)
	if err != nil {
		return "", err
	}
	n := int(b0)
	if b0&0x80 != 0 {
		b1, err := ReadByte(r)
		if err != nil {
			return "", noEOF(err)
		}
		n = int(b0&0x7F)<<8 | int(b1)
	}
	if n > max {
		return "", fmt.Errorf("string of %d bytes (limit %d): %w", n, max, ErrOverflow)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", noEOF(err)
	}
	return string(buf), nil
}

// noEOF turns a clean EOF in the middle of a value into ErrUnexpectedEOF.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
