package token

import (
	"fmt"
	"io"
)

// lz4Writer writes rsync's "lz4" token stream (protocol 31, rsync
// 3.2+): every flagData record carries one independent LZ4 block (no
// frame, no history across records) of at most maxDataCount compressed
// bytes, holding at most maxDataCount bytes of literal data. A piece
// whose block would exceed the record limit (incompressible data) is
// split in halves until it fits, as stock rsync's sender does. Matched
// data does not enter any history. The blocks come from lz4Compressor
// (lz4block.go). The receiver decodes each record on
// its own into a buffer of about 32 KiB (LZ4_compressBound(CHUNK_SIZE)),
// which the at most maxDataCount bytes of one record fit, and it takes
// a record that decodes to nothing for the end of the file: empty
// pieces are never sent.
type lz4Writer struct {
	out  io.Writer
	runs runCoder
	c    lz4Compressor
	buf  []byte // buf[:2] is room for the record header; the block follows
	err  error
}

func newLZ4Writer(out io.Writer) *lz4Writer {
	return &lz4Writer{out: out, buf: make([]byte, 2+lz4Bound(maxDataCount))}
}

// Literal implements Writer.
func (z *lz4Writer) Literal(p []byte) error {
	if z.err != nil {
		return z.err
	}
	if len(p) == 0 {
		return nil
	}
	if err := z.runs.flush(z.out); err != nil {
		return z.fail(err)
	}
	for len(p) > 0 {
		n := min(len(p), maxDataCount)
		if err := z.block(p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// block sends piece (1..maxDataCount bytes) as one record, or as two
// halves when its compressed form does not fit one record.
func (z *lz4Writer) block(piece []byte) error {
	n := z.c.compress(piece, z.buf[2:])
	if n > maxDataCount {
		h := len(piece) / 2
		if err := z.block(piece[:h]); err != nil {
			return err
		}
		return z.block(piece[h:])
	}
	z.buf[0] = flagData | byte(n>>8)
	z.buf[1] = byte(n)
	if _, err := z.out.Write(z.buf[:2+n]); err != nil {
		return z.fail(fmt.Errorf("token: write compressed data: %w", err))
	}
	return nil
}

// Match implements Writer.
func (z *lz4Writer) Match(block int32, _ []byte) error {
	if z.err != nil {
		return z.err
	}
	if err := z.runs.match(z.out, block); err != nil {
		return z.fail(err)
	}
	return nil
}

// End implements Writer.
func (z *lz4Writer) End() error {
	if z.err != nil {
		return z.err
	}
	if err := z.runs.end(z.out); err != nil {
		return z.fail(err)
	}
	return nil
}

func (z *lz4Writer) fail(err error) error {
	z.err = err
	return err
}
