package token

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"time"

	"compress/flate"

	"github.com/klauspost/compress/zstd"
)

// This file is an independent model of stock rsync's receiver for the
// compressed token streams (receiver.c, token.c: recv_deflated_token,
// see_deflate_token, recv_zstd_token), used to check what the writers
// produce. Inflation is done by the standard library's compress/flate
// (a different implementation from the writers' klauspost/compress);
// zstd by the zstd command (libzstd, as rsync links) when installed,
// else by klauspost's decoder.

// op is one token-stream event the receiver saw.
type op struct {
	lit   []byte // literal data (nil for a block)
	block int32  // matched block when lit == nil
}

// stream reads a compressed token stream.
type stream struct {
	r *bytes.Reader
}

func (s *stream) byte() (byte, error) {
	b, err := s.r.ReadByte()
	if err != nil {
		return 0, fmt.Errorf("stream ends early: %w", err)
	}
	return b, nil
}

func (s *stream) bytes(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(s.r, b); err != nil {
		return nil, fmt.Errorf("stream ends early: %w", err)
	}
	return b, nil
}

// record is one parsed flag record: compressed data, a run of blocks
// [first, first+count], or the end of a file.
type record struct {
	data         []byte
	first, count int32
	end          bool
}

// next parses one record; rx is the receiver's current block number,
// updated as rsync's recv_compressed_token_num does.
func (s *stream) next(rx *int32) (record, error) {
	flag, err := s.byte()
	if err != nil {
		return record{}, err
	}
	switch {
	case flag == flagEnd:
		return record{end: true}, nil
	case flag&0xc0 == flagData:
		lo, err := s.byte()
		if err != nil {
			return record{}, err
		}
		n := int(flag&0x3f)<<8 | int(lo)
		if n == 0 {
			return record{}, errors.New("empty data record")
		}
		b, err := s.bytes(n)
		return record{data: b}, err
	}
	run := false
	switch {
	case flag&0x80 != 0:
		*rx += int32(flag & 0x3f)
		run = flag&0x40 != 0
	case flag == flagTokenLong || flag == flagTokenRunLong:
		b, err := s.bytes(4)
		if err != nil {
			return record{}, err
		}
		*rx = int32(binary.LittleEndian.Uint32(b))
		if *rx < 0 {
			return record{}, fmt.Errorf("negative block %d", *rx)
		}
		run = flag == flagTokenRunLong
	default:
		return record{}, fmt.Errorf("unknown flag %#x", flag)
	}
	rec := record{first: *rx}
	if run {
		b, err := s.bytes(2)
		if err != nil {
			return record{}, err
		}
		rec.count = int32(binary.LittleEndian.Uint16(b))
		if rec.count == 0 {
			return record{}, errors.New("run of zero blocks")
		}
		*rx += rec.count
	}
	return rec, nil
}

// decodeDeflate decodes a session's zlib or zlibx token stream into the
// files' operations. block returns the receiver's copy of block i of
// file f (what see_token feeds the inflater).
func decodeDeflate(b []byte, insert bool, protocol, files int, block func(f int, i int32) []byte) ([][]op, error) {
	s := &stream{r: bytes.NewReader(b)}
	var out [][]op
	for f := 0; f < files; f++ {
		var ops []op
		var window []byte // the inflater's window (all of it, for the test)
		var data []byte   // compressed bytes since the last sync point
		rx := int32(0)
		for {
			rec, err := s.next(&rx)
			if err != nil {
				return nil, fmt.Errorf("file %d: %w", f, err)
			}
			if rec.data != nil {
				data = append(data, rec.data...)
				continue
			}
			if data != nil {
				lit, err := inflateRun(data, window)
				if err != nil {
					return nil, fmt.Errorf("file %d: %w", f, err)
				}
				ops = append(ops, op{lit: lit})
				window = append(window, lit...)
				data = nil
			}
			if rec.end {
				break
			}
			for i := rec.first; i <= rec.first+rec.count; i++ {
				ops = append(ops, op{block: i})
				if !insert {
					continue
				}
				// see_deflate_token: stored blocks of at most 0xffff
				// bytes; before protocol 31 each restarts at the
				// block's first byte.
				blk := block(f, i)
				off := 0
				for left := len(blk); left > 0; {
					n := min(left, 0xffff)
					window = append(window, blk[off:off+n]...)
					if protocol >= 31 {
						off += n
					}
					left -= n
				}
			}
		}
		out = append(out, ops)
	}
	if s.r.Len() != 0 {
		return nil, fmt.Errorf("%d bytes after the last file", s.r.Len())
	}
	return out, nil
}

// inflateRun inflates one compressed run as rsync's receiver does: the
// run's bytes, then the sync marker rsync does not send (00 00 ff ff),
// which must complete an empty stored block; window is what the
// inflater has seen of this file. A final empty stored block is added so
// that the standard library's reader ends cleanly; every byte must be
// consumed.
func inflateRun(data, window []byte) ([]byte, error) {
	in := append(append([]byte{}, data...), 0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff)
	if len(window) > windowSize {
		window = window[len(window)-windowSize:]
	}
	br := bytes.NewReader(in)
	zr := flate.NewReaderDict(br, window)
	lit, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("inflate: %w", err)
	}
	if br.Len() != 0 {
		return nil, fmt.Errorf("inflate: %d bytes left: the run did not end at a sync point", br.Len())
	}
	return lit, nil
}

// decodeZstd decodes a session's zstd token stream. The compressed
// bytes of the whole session form one zstd frame that never ends; at
// every record the receiver must be able to decode all the data before
// it, so the decoder is run on each such prefix (klauspost's, for
// speed); with useCLI the whole stream is also decoded by libzstd.
func decodeZstd(b []byte, files int, useCLI bool) ([][]op, error) {
	s := &stream{r: bytes.NewReader(b)}
	var all []byte // compressed bytes so far
	var decoded []byte
	var out [][]op
	for f := 0; f < files; f++ {
		var ops []op
		rx := int32(0)
		fresh := false
		for {
			rec, err := s.next(&rx)
			if err != nil {
				return nil, fmt.Errorf("file %d: %w", f, err)
			}
			if rec.data != nil {
				all = append(all, rec.data...)
				fresh = true
				continue
			}
			if fresh {
				d, err := unzstd(all, false)
				if err != nil {
					return nil, fmt.Errorf("file %d: %w", f, err)
				}
				if len(d) <= len(decoded) || !bytes.Equal(d[:len(decoded)], decoded) {
					return nil, fmt.Errorf("file %d: flushed data decodes to %d bytes after %d", f, len(d), len(decoded))
				}
				ops = append(ops, op{lit: d[len(decoded):]})
				decoded = d
				fresh = false
			}
			if rec.end {
				break
			}
			for i := rec.first; i <= rec.first+rec.count; i++ {
				ops = append(ops, op{block: i})
			}
		}
		out = append(out, ops)
	}
	if s.r.Len() != 0 {
		return nil, fmt.Errorf("%d bytes after the last file", s.r.Len())
	}
	if useCLI && len(all) > 0 {
		// libzstd, which stock rsync uses, must decode the same.
		d, err := unzstd(all, true)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(d, decoded) {
			return nil, fmt.Errorf("libzstd decodes %d bytes, klauspost %d", len(d), len(decoded))
		}
	}
	return out, nil
}

// unzstd decodes everything a receiver can decode from an unfinished
// zstd frame: the frame is closed with an empty last block (the writer
// sends no content checksum) so that the decoder must accept all of it.
func unzstd(b []byte, useCLI bool) ([]byte, error) {
	closed := append(append([]byte{}, b...), 1, 0, 0)
	if useCLI {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "zstd", "-dc")
		cmd.Stdin = bytes.NewReader(closed)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("zstd -dc: %v: %s", err, stderr.Bytes())
		}
		return out, nil
	}
	dec, err := zstd.NewReader(bytes.NewReader(closed), zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	out, err := io.ReadAll(dec)
	if err != nil {
		return nil, fmt.Errorf("zstd decode: %w", err)
	}
	return out, nil
}

// decodeLZ4 decodes a session's lz4 token stream as rsync's
// recv_compressed_token does: every data record is one LZ4 block on its
// own, decoded into a buffer of lz4RecvBuf bytes; a record that decodes
// to nothing would end the file on the receiver, so it is an error here.
func decodeLZ4(b []byte, files int) ([][]op, error) {
	s := &stream{r: bytes.NewReader(b)}
	var out [][]op
	for f := 0; f < files; f++ {
		var ops []op
		rx := int32(0)
		for {
			rec, err := s.next(&rx)
			if err != nil {
				return nil, fmt.Errorf("file %d: %w", f, err)
			}
			if rec.data != nil {
				lit, err := unlz4Block(rec.data, lz4RecvBuf)
				if err != nil {
					return nil, fmt.Errorf("file %d: %w", f, err)
				}
				if len(lit) == 0 {
					return nil, fmt.Errorf("file %d: a data record decodes to nothing", f)
				}
				if n := len(ops); n > 0 && ops[n-1].lit != nil {
					ops[n-1].lit = append(ops[n-1].lit, lit...)
				} else {
					ops = append(ops, op{lit: lit})
				}
				continue
			}
			if rec.end {
				break
			}
			for i := rec.first; i <= rec.first+rec.count; i++ {
				ops = append(ops, op{block: i})
			}
		}
		out = append(out, ops)
	}
	if s.r.Len() != 0 {
		return nil, fmt.Errorf("%d bytes after the last file", s.r.Len())
	}
	return out, nil
}

// lz4RecvBuf is the receiver's output buffer for one record:
// MAX(LZ4_compressBound(CHUNK_SIZE), MAX_DATA_COUNT+2).
const lz4RecvBuf = ChunkSize + ChunkSize/255 + 16

// unlz4Block is an independent decoder of one LZ4 block (the block
// format: sequences of a token byte, literal length extension,
// literals, 2-byte little-endian offset, match length extension; the
// last sequence has literals only), with LZ4_decompress_safe's checks:
// nothing outside the input, the output limit or the data decoded.
func unlz4Block(in []byte, limit int) ([]byte, error) {
	var out []byte
	i := 0
	length := func(n int) (int, error) {
		if n != 15 {
			return n, nil
		}
		for {
			if i >= len(in) {
				return 0, errors.New("lz4: length runs past the input")
			}
			b := in[i]
			i++
			n += int(b)
			if b != 255 {
				return n, nil
			}
		}
	}
	for {
		if i >= len(in) {
			return nil, errors.New("lz4: block ends without a last sequence")
		}
		tok := in[i]
		i++
		lit, err := length(int(tok >> 4))
		if err != nil {
			return nil, err
		}
		if i+lit > len(in) {
			return nil, errors.New("lz4: literals run past the input")
		}
		out = append(out, in[i:i+lit]...)
		i += lit
		if len(out) > limit {
			return nil, fmt.Errorf("lz4: more than %d bytes", limit)
		}
		if i == len(in) {
			return out, nil // the last sequence
		}
		if i+2 > len(in) {
			return nil, errors.New("lz4: offset runs past the input")
		}
		off := int(binary.LittleEndian.Uint16(in[i:]))
		i += 2
		if off == 0 || off > len(out) {
			return nil, fmt.Errorf("lz4: offset %d with %d bytes decoded", off, len(out))
		}
		ml, err := length(int(tok & 15))
		if err != nil {
			return nil, err
		}
		ml += 4
		if len(out)+ml > limit {
			return nil, fmt.Errorf("lz4: more than %d bytes", limit)
		}
		for k := 0; k < ml; k++ { // byte by byte: the copy may overlap
			out = append(out, out[len(out)-off])
		}
	}
}
