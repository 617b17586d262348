package token

import (
	"bytes"
	"fmt"
	"io"
)

// chunker is the io.Writer a compressor writes to: it cuts the
// compressed bytes into flagData records of at most maxDataCount bytes.
// It keeps the last hold bytes back, so that finish can drop a trailer
// the receiver supplies itself (deflate's sync-flush marker).
type chunker struct {
	out  io.Writer
	hold int
	buf  []byte // buf[:2] is room for the record header; payload follows
	err  error
	// discard drops what the compressor writes (while it takes in
	// history the receiver gets by other means).
	discard bool
}

func newChunker(out io.Writer, hold int) *chunker {
	c := &chunker{out: out, hold: hold, buf: make([]byte, 2, 2+maxDataCount+hold)}
	return c
}

// Write implements io.Writer.
func (c *chunker) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.discard {
		return len(p), nil
	}
	n := len(p)
	full := 2 + maxDataCount + c.hold
	for len(p) > 0 {
		k := min(full-len(c.buf), len(p))
		c.buf = append(c.buf, p[:k]...)
		p = p[k:]
		if len(c.buf) == full {
			if err := c.emit(maxDataCount); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

// emit sends the first n payload bytes as one record and keeps the rest.
func (c *chunker) emit(n int) error {
	c.buf[0] = flagData | byte(n>>8)
	c.buf[1] = byte(n)
	if _, err := c.out.Write(c.buf[:2+n]); err != nil {
		c.err = fmt.Errorf("token: write compressed data: %w", err)
		return c.err
	}
	rest := copy(c.buf[2:], c.buf[2+n:])
	c.buf = c.buf[:2+rest]
	return nil
}

// finish sends everything buffered, after checking that the payload ends
// with trailer and dropping it.
func (c *chunker) finish(trailer []byte) error {
	if c.err != nil {
		return c.err
	}
	payload := c.buf[2:]
	if !bytes.HasSuffix(payload, trailer) {
		c.err = fmt.Errorf("token: compressor flush did not end with % x", trailer)
		return c.err
	}
	n := len(payload) - len(trailer)
	if n > 0 {
		if err := c.emit(n); err != nil {
			return err
		}
	}
	c.buf = c.buf[:2]
	return nil
}
