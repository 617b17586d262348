package token

import (
	"fmt"
	"io"

	"github.com/klauspost/compress/flate"
)

// syncMarker ends every deflate sync flush (an empty stored block's
// length and its complement). rsync does not send it: the receiver
// feeds it to its inflater itself when the compressed run ends.
var syncMarker = []byte{0, 0, 0xff, 0xff}

// maxFeed is how much of a matched block the receiver feeds its inflater
// per stored block (a stored block holds at most 0xffff bytes).
const maxFeed = 0xffff

// deflateWriter writes rsync's "zlib" and "zlibx" token streams: raw
// deflate of the literal data, reset at the start of every file,
// sync-flushed before every block record and at the end of each file.
//
// For "zlib" the receiver also puts every matched block into its
// inflate window (as a stored block that produces no file data), and
// stock rsync's sender inserts it into its deflate history likewise.
// Go's compressors cannot take history without producing output. After
// matched data, at the byte-aligned block boundary that follows a sync
// flush, the compressor takes it in one of two ways before the next
// literal: it compresses the matched data and the output is dropped,
// ending with a sync flush that leaves it byte-aligned again (cheaper
// below 32 KiB of matched data), or it restarts with the last 32 KiB of
// what the receiver's window holds as its preset dictionary. Either
// way its window then holds the same bytes as the receiver's, so its
// back-references resolve to the same data.
type deflateWriter struct {
	out      io.Writer
	runs     runCoder
	chunks   *chunker
	fw       *flate.Writer
	insert   bool // "zlib": matched data enters the history
	protocol int
	hist     history
	dirty    bool // literals written since the last sync flush
	stale    int  // bytes of matched data the compressor has not taken in
	err      error
}

func newDeflateWriter(out io.Writer, level int, insert bool, protocol int) (*deflateWriter, error) {
	d := &deflateWriter{out: out, insert: insert, protocol: protocol}
	d.chunks = newChunker(out, len(syncMarker))
	fw, err := flate.NewWriter(d.chunks, level)
	if err != nil {
		return nil, fmt.Errorf("token: deflate level %d: %w", level, err)
	}
	d.fw = fw
	return d, nil
}

// Literal implements Writer.
func (d *deflateWriter) Literal(p []byte) error {
	if d.err != nil {
		return d.err
	}
	if len(p) == 0 {
		return nil
	}
	if err := d.runs.flush(d.out); err != nil {
		return d.fail(err)
	}
	if d.stale > 0 {
		if err := d.catchUp(); err != nil {
			return err
		}
	}
	if _, err := d.fw.Write(p); err != nil {
		return d.fail(fmt.Errorf("token: deflate: %w", err))
	}
	if d.insert {
		d.hist.add(p)
	}
	d.dirty = true
	return nil
}

// Match implements Writer.
func (d *deflateWriter) Match(block int32, data []byte) error {
	if d.err != nil {
		return d.err
	}
	if err := d.syncFlush(); err != nil {
		return err
	}
	if err := d.runs.match(d.out, block); err != nil {
		return d.fail(err)
	}
	if !d.insert || len(data) == 0 {
		return nil
	}
	// The receiver feeds the block in stored blocks of at most maxFeed
	// bytes; before protocol 31 each of them starts again at the
	// block's first byte (a bug both sides keep for compatibility).
	off := 0
	for left := len(data); left > 0; {
		n := min(left, maxFeed)
		d.hist.add(data[off : off+n])
		d.stale += n
		if d.protocol >= 31 {
			off += n
		}
		left -= n
	}
	return nil
}

// catchUp puts the matched data the receiver has added to its window
// since the last literal into the compressor's history.
func (d *deflateWriter) catchUp() error {
	win := d.hist.window()
	if d.stale >= len(win) {
		d.fw.ResetDict(d.chunks, win)
		d.stale = 0
		return nil
	}
	d.chunks.discard = true
	_, err := d.fw.Write(win[len(win)-d.stale:])
	if err == nil {
		err = d.fw.Flush()
	}
	d.chunks.discard = false
	d.stale = 0
	if err != nil {
		return d.fail(fmt.Errorf("token: deflate history: %w", err))
	}
	return nil
}

// End implements Writer.
func (d *deflateWriter) End() error {
	if d.err != nil {
		return d.err
	}
	if err := d.syncFlush(); err != nil {
		return err
	}
	if err := d.runs.end(d.out); err != nil {
		return d.fail(err)
	}
	// Both sides start the next file with a fresh deflate state. (Reset
	// would restore the last ResetDict dictionary: clear it instead.)
	d.fw.ResetDict(d.chunks, nil)
	d.hist.reset()
	d.stale = 0
	return nil
}

// syncFlush ends the current compressed run so that the receiver can
// inflate all of it before the next record.
func (d *deflateWriter) syncFlush() error {
	if !d.dirty {
		return nil
	}
	d.dirty = false
	if err := d.fw.Flush(); err != nil {
		return d.fail(fmt.Errorf("token: deflate flush: %w", err))
	}
	if err := d.chunks.finish(syncMarker); err != nil {
		return d.fail(err)
	}
	return nil
}

func (d *deflateWriter) fail(err error) error {
	d.err = err
	return err
}
