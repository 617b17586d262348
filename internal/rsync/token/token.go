// Package token writes the rsync token stream that carries each file's
// data from the sender: literal runs and references to blocks the
// receiver already has, ended by an end-of-file token.
//
// Without compression the stream is plain (Plain). With -z it is one of
// stock rsync's compressed streams (token.c): flag-byte records for
// block runs and compressed data, with the data deflated ("zlib", where
// matched blocks also enter the deflate history, and "zlibx", where they
// do not) or zstd-compressed ("zstd"). The writers are checked against
// stock rsync clients in internal/rsync/sender (compress_test.go) and
// against a model of rsync's receiver in this package's tests.
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
// lz4 comes first: it costs the sender the least CPU per byte (about
// half of zstd's for an ebuild tree), at about twice zstd's bytes on the
// wire, which a LAN carries easily; then stock rsync's order.
func Supported() []string { return []string{"lz4", "zstd", "zlibx", "zlib"} }

// NewWriter returns the token writer for the negotiated compression name
// ("" or "none": plain tokens) at the given level (-1: the default) for
// protocol 31 and later. Use NewWriterProtocol below protocol 31.
func NewWriter(w io.Writer, compress string, level int) (Writer, error) {
	return NewWriterProtocol(w, compress, level, 31)
}

// NewWriterProtocol is NewWriter for the negotiated protocol version:
// before protocol 31 stock rsync adds matched blocks longer than 64 KiB
// to the zlib history differently, and so must we.
//
// One writer serves a whole session, file after file, as stock rsync's
// compression state does: zlib and zlibx restart their deflate stream
// at every file, zstd keeps one stream for the session. Levels follow
// rsync: for zlib and zlibx -1 means 6, 0 turns compression off (plain
// tokens, as both sides of stock rsync do), others are clamped to 1..9;
// for zstd -1 and 0 mean our default, the fastest level (stock rsync's
// is 3: the level is the sender's choice, the stream does not depend on
// it); lz4 has no levels.
func NewWriterProtocol(w io.Writer, compress string, level, protocol int) (Writer, error) {
	switch compress {
	case "", "none":
		return Plain{W: w}, nil
	case "zlib", "zlibx":
		switch {
		case level == 0:
			return Plain{W: w}, nil
		case level == -1:
			level = 6
		}
		level = min(max(level, 1), 9)
		return newDeflateWriter(w, level, compress == "zlib", protocol)
	case "zstd":
		return newZstdWriter(w, level)
	case "lz4":
		return newLZ4Writer(w), nil
	}
	return nil, fmt.Errorf("token: compression %q not implemented", compress)
}
