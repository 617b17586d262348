// Package token writes the rsync token stream that carries one file's
// data from the sender: literal runs and references to blocks the
// receiver already has, ended by an end-of-file token.
package token

import (
	"encoding/binary"
	"fmt"
	"io"
)

// ChunkSize is the largest literal run sent in one token (CHUNK_SIZE).
const ChunkSize = 32 * 1024

// Writer encodes one file's tokens.
type Writer interface {
	// Literal sends data the receiver does not have.
	Literal(p []byte) error
	// Match tells the receiver to copy its block number block; data is
	// that block's content (compressed streams add it to their history,
	// as the receiver does).
	Match(block int32, data []byte) error
	// End ends the file's token stream.
	End() error
}

// Plain is the uncompressed token stream: int32 n followed by n literal
// bytes (n ≤ ChunkSize), int32 -(i+1) for a match of block i, int32 0 at
// the end of the file.
type Plain struct {
	W io.Writer
}

func (p Plain) int32(v int32) error {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], uint32(v))
	if _, err := p.W.Write(b[:]); err != nil {
		return fmt.Errorf("token: %w", err)
	}
	return nil
}

// Literal implements Writer.
func (p Plain) Literal(data []byte) error {
	for len(data) > 0 {
		n := min(len(data), ChunkSize)
		if err := p.int32(int32(n)); err != nil {
			return err
		}
		if _, err := p.W.Write(data[:n]); err != nil {
			return fmt.Errorf("token: %w", err)
		}
		data = data[n:]
	}
	return nil
}

// Match implements Writer.
func (p Plain) Match(block int32, _ []byte) error {
	if block < 0 {
		return fmt.Errorf("token: negative block %d", block)
	}
	return p.int32(-(block + 1))
}

// End implements Writer.
func (p Plain) End() error { return p.int32(0) }

// Supported lists the compression names this package implements, in our
// order of preference, as advertised during negotiation (protocol 30+).
func Supported() []string { return []string{"zlib"} }

// NewWriter returns the token writer for the negotiated compression name
// ("" or "none": plain tokens) at the given level (-1: the default).
func NewWriter(w io.Writer, compress string, level int) (Writer, error) {
	switch compress {
	case "", "none":
		return Plain{W: w}, nil
	}
	return nil, fmt.Errorf("token: compression %q not implemented", compress)
}
