// Package wire holds the byte-level pieces of the rsync protocol: integer
// encodings (ints.go) and the multiplexed framing used between the sender
// and the client (mux.go).
package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// MsgCode is the tag of a multiplexed frame.
type MsgCode uint8

// Message codes used on multiplexed streams (io.c).
const (
	MsgData      MsgCode = 0
	MsgErrorXfer MsgCode = 1
	MsgInfo      MsgCode = 2
	MsgError     MsgCode = 3
	MsgWarning   MsgCode = 4
	MsgIOError   MsgCode = 22
	MsgIOTimeout MsgCode = 33
	MsgNoop      MsgCode = 42
	MsgErrorExit MsgCode = 86
	MsgNoSend    MsgCode = 102
)

// mplexBase is added to a message code in the frame header.
const mplexBase = 7

// MaxFrame is the largest payload one frame carries (24-bit length field).
const MaxFrame = 0xFFFFFF

// dataChunk is the payload size at which buffered data frames are flushed.
const dataChunk = 32 * 1024

// MuxWriter frames everything written to it as MSG_DATA and offers
// out-of-band messages. It is safe for concurrent use (a keep-alive
// goroutine may write while the session writes data).
type MuxWriter struct {
	mu  sync.Mutex
	w   *bufio.Writer
	buf []byte
	err error
}

// NewMuxWriter returns a writer that frames its output onto w.
func NewMuxWriter(w io.Writer) *MuxWriter {
	return &MuxWriter{w: bufio.NewWriterSize(w, 64*1024), buf: make([]byte, 0, dataChunk)}
}

// Write buffers p as data, emitting full frames as the buffer fills.
func (m *MuxWriter) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return 0, m.err
	}
	n := 0
	for len(p) > 0 {
		room := dataChunk - len(m.buf)
		k := min(room, len(p))
		m.buf = append(m.buf, p[:k]...)
		p = p[k:]
		n += k
		if len(m.buf) == dataChunk {
			if err := m.flushDataLocked(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

func (m *MuxWriter) frameLocked(code MsgCode, payload []byte) error {
	if m.err != nil {
		return m.err
	}
	if len(payload) > MaxFrame {
		return fmt.Errorf("mux: frame of %d bytes exceeds %d", len(payload), MaxFrame)
	}
	var hdr [4]byte
	binary.LittleEndian.PutUint32(hdr[:], uint32(mplexBase+int(code))<<24|uint32(len(payload)))
	if _, err := m.w.Write(hdr[:]); err != nil {
		m.err = fmt.Errorf("mux: write header: %w", err)
		return m.err
	}
	if _, err := m.w.Write(payload); err != nil {
		m.err = fmt.Errorf("mux: write payload: %w", err)
		return m.err
	}
	return nil
}

func (m *MuxWriter) flushDataLocked() error {
	if len(m.buf) == 0 {
		return nil
	}
	err := m.frameLocked(MsgData, m.buf)
	m.buf = m.buf[:0]
	return err
}

// WriteMsg sends an out-of-band message; pending data goes out first so
// that ordering is preserved.
func (m *MuxWriter) WriteMsg(code MsgCode, payload []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.flushDataLocked(); err != nil {
		return err
	}
	return m.frameLocked(code, payload)
}

// KeepAlive sends an empty data frame (or MSG_NOOP when noop is true) and
// flushes, so an idle client does not time out.
func (m *MuxWriter) KeepAlive(noop bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.flushDataLocked(); err != nil {
		return err
	}
	code := MsgData
	if noop {
		code = MsgNoop
	}
	if err := m.frameLocked(code, nil); err != nil {
		return err
	}
	return m.w.Flush()
}

// Flush sends buffered data frames to the underlying writer.
func (m *MuxWriter) Flush() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.flushDataLocked(); err != nil {
		return err
	}
	if err := m.w.Flush(); err != nil {
		m.err = fmt.Errorf("mux: flush: %w", err)
		return m.err
	}
	return nil
}

// ErrClientError is returned by MuxReader when the client sends a fatal
// MSG_ERROR_EXIT.
var ErrClientError = errors.New("client reported a fatal error")

// MuxReader removes framing from a client stream (protocol 30+),
// returning the payload of data frames and handing other messages to
// OnMsg.
type MuxReader struct {
	r      io.Reader
	remain int
	// OnMsg, when set, receives non-data messages (payload is only valid
	// during the call). It may return an error to end reading.
	OnMsg func(code MsgCode, payload []byte) error
	// MaxMsg bounds the size of an out-of-band message accepted.
	MaxMsg int
	one    [1]byte // ReadByte's buffer
}

// NewMuxReader returns a reader that demultiplexes r.
func NewMuxReader(r io.Reader) *MuxReader {
	return &MuxReader{r: r, MaxMsg: 64 * 1024}
}

// ReadByte returns the next data-frame byte (io.ByteReader: the
// package's integer readers then need no buffer of their own).
func (m *MuxReader) ReadByte() (byte, error) {
	if m.remain > 0 {
		if br, ok := m.r.(io.ByteReader); ok {
			c, err := br.ReadByte()
			if err == nil {
				m.remain--
			}
			return c, err
		}
	}
	for range 100 {
		n, err := m.Read(m.one[:])
		if n == 1 {
			return m.one[0], nil
		}
		if err != nil {
			return 0, err
		}
	}
	return 0, io.ErrNoProgress
}

// Read returns data-frame payload bytes.
func (m *MuxReader) Read(p []byte) (int, error) {
	for m.remain == 0 {
		var hdr [4]byte
		if _, err := io.ReadFull(m.r, hdr[:]); err != nil {
			return 0, err
		}
		v := binary.LittleEndian.Uint32(hdr[:])
		tag := int(v >> 24)
		n := int(v & MaxFrame)
		if tag < mplexBase {
			return 0, fmt.Errorf("mux: unexpected tag %d in frame header", tag)
		}
		code := MsgCode(tag - mplexBase)
		if code == MsgData {
			m.remain = n
			continue
		}
		if n > m.MaxMsg {
			return 0, fmt.Errorf("mux: message %d of %d bytes is too long", code, n)
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(m.r, payload); err != nil {
			return 0, fmt.Errorf("mux: read message %d: %w", code, err)
		}
		if code == MsgErrorExit {
			return 0, ErrClientError
		}
		if m.OnMsg != nil {
			if err := m.OnMsg(code, payload); err != nil {
				return 0, err
			}
		}
	}
	if len(p) > m.remain {
		p = p[:m.remain]
	}
	n, err := m.r.Read(p)
	m.remain -= n
	return n, err
}
