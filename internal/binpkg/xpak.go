package binpkg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The xpak trailer of a .tbz2 (or multi-instance .xpak) package, as
// described in xpak(5):
//
//	<tar.bz2> "XPAKPACK" index_len data_len <index> <data> "XPAKSTOP" xpak_len "STOP"
//
// Integers are big-endian uint32; xpak_len counts from "XPAKPACK" to
// "XPAKSTOP" inclusive. Each index entry is name_len <name> data_offset
// data_len, the offset counted from the start of the data block.

const (
	xpakHead = "XPAKPACK"
	xpakTail = "XPAKSTOP"
	xpakStop = "STOP"

	// maxXpakIndex bounds the index block read into memory.
	maxXpakIndex = 1 << 20
	// maxMetaValue bounds one metadata value kept (the build environment,
	// which can be large, is never wanted).
	maxMetaValue = 1 << 20
)

// ErrNoXpak means the file carries no valid xpak trailer.
var ErrNoXpak = errors.New("no valid xpak trailer")

// ReadXpak reads the metadata of an xpak package of the given size: the
// value of every entry whose name want accepts (want nil: every entry).
// Only the index and the wanted values are read.
func ReadXpak(r io.ReaderAt, size int64, want func(name string) bool) (map[string][]byte, error) {
	if size < 16+8+8 {
		return nil, fmt.Errorf("%w: file too short", ErrNoXpak)
	}
	var trailer [16]byte
	if _, err := r.ReadAt(trailer[:], size-16); err != nil {
		return nil, fmt.Errorf("read xpak trailer: %w", err)
	}
	if string(trailer[12:]) != xpakStop || string(trailer[:8]) != xpakTail {
		return nil, fmt.Errorf("%w: missing STOP/XPAKSTOP", ErrNoXpak)
	}
	xlen := int64(binary.BigEndian.Uint32(trailer[8:12]))
	start := size - 8 - xlen // XPAKPACK
	if xlen < 8+8+8 || start < 0 {
		return nil, fmt.Errorf("%w: bad xpak length %d", ErrNoXpak, xlen)
	}
	var head [16]byte
	if _, err := r.ReadAt(head[:], start); err != nil {
		return nil, fmt.Errorf("read xpak header: %w", err)
	}
	if string(head[:8]) != xpakHead {
		return nil, fmt.Errorf("%w: missing XPAKPACK", ErrNoXpak)
	}
	indexLen := int64(binary.BigEndian.Uint32(head[8:12]))
	dataLen := int64(binary.BigEndian.Uint32(head[12:16]))
	if 16+indexLen+dataLen+8 != xlen {
		return nil, fmt.Errorf("%w: index %d + data %d do not fill %d bytes", ErrNoXpak, indexLen, dataLen, xlen)
	}
	if indexLen > maxXpakIndex {
		return nil, fmt.Errorf("xpak index of %d bytes is too large", indexLen)
	}
	index := make([]byte, indexLen)
	if _, err := r.ReadAt(index, start+16); err != nil {
		return nil, fmt.Errorf("read xpak index: %w", err)
	}
	dataStart := start + 16 + indexLen
	out := map[string][]byte{}
	for len(index) > 0 {
		if len(index) < 4 {
			return nil, fmt.Errorf("%w: truncated index entry", ErrNoXpak)
		}
		nameLen := int(binary.BigEndian.Uint32(index))
		if nameLen > len(index)-4-8 {
			return nil, fmt.Errorf("%w: index entry name of %d bytes overruns the index", ErrNoXpak, nameLen)
		}
		name := string(index[4 : 4+nameLen])
		off := int64(binary.BigEndian.Uint32(index[4+nameLen:]))
		n := int64(binary.BigEndian.Uint32(index[8+nameLen:]))
		index = index[12+nameLen:]
		if off+n > dataLen {
			return nil, fmt.Errorf("%w: entry %q overruns the data block", ErrNoXpak, name)
		}
		if want != nil && !want(name) {
			continue
		}
		if n > maxMetaValue {
			return nil, fmt.Errorf("xpak entry %q of %d bytes is too large", name, n)
		}
		v := make([]byte, n)
		if _, err := r.ReadAt(v, dataStart+off); err != nil {
			return nil, fmt.Errorf("read xpak entry %q: %w", name, err)
		}
		out[name] = v
	}
	return out, nil
}
