package token

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Flag bytes of the compressed token streams (zlib, zlibx, zstd).
const (
	flagEnd          = 0x00 // end of the file
	flagTokenLong    = 0x20 // + int32 block number
	flagTokenRunLong = 0x21 // + int32 block number + 16-bit run count
	flagData         = 0x40 // | 6 high bits of the length, then the low byte
	flagTokenRel     = 0x80 // + 6-bit block number relative to the last run's end
	flagTokenRunRel  = 0xc0 // same + 16-bit run count
)

// maxDataCount is the largest compressed chunk one flagData record
// carries: its length must fit in 14 bits.
const maxDataCount = 16383

// maxRun is how many blocks one run record can add after its first.
const maxRun = 0xffff

// runCoder gathers consecutive matched blocks into runs and writes their
// records. The receiver starts every file at block 0 and ends each run
// at its last block; relative records count from there.
type runCoder struct {
	pending     bool
	start, last int32 // the pending run
	lastRunEnd  int32 // last block of the previous run in this file
	rec         [8]byte
}

// reset prepares for a new file.
func (r *runCoder) reset() {
	r.pending = false
	r.lastRunEnd = 0
}

// match records block; it writes the pending run first when block does
// not extend it.
func (r *runCoder) match(w io.Writer, block int32) error {
	if block < 0 || block == 0x7fffffff {
		return fmt.Errorf("token: invalid block number %d", block)
	}
	if r.pending && block == r.last+1 && block-r.start <= maxRun {
		r.last = block
		return nil
	}
	if err := r.flush(w); err != nil {
		return err
	}
	r.pending = true
	r.start, r.last = block, block
	return nil
}

// flush writes the pending run, if any.
func (r *runCoder) flush(w io.Writer) error {
	if !r.pending {
		return nil
	}
	r.pending = false
	rel := int64(r.start) - int64(r.lastRunEnd)
	count := r.last - r.start
	b := r.rec[:0]
	if rel >= 0 && rel <= 63 {
		if count == 0 {
			b = append(b, flagTokenRel|byte(rel))
		} else {
			b = append(b, flagTokenRunRel|byte(rel))
		}
	} else {
		if count == 0 {
			b = append(b, flagTokenLong)
		} else {
			b = append(b, flagTokenRunLong)
		}
		b = binary.LittleEndian.AppendUint32(b, uint32(r.start))
	}
	if count != 0 {
		b = binary.LittleEndian.AppendUint16(b, uint16(count))
	}
	r.lastRunEnd = r.last
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("token: write block record: %w", err)
	}
	return nil
}

// end writes the pending run and the end-of-file flag, and prepares for
// the next file.
func (r *runCoder) end(w io.Writer) error {
	if err := r.flush(w); err != nil {
		return err
	}
	r.rec[0] = flagEnd
	if _, err := w.Write(r.rec[:1]); err != nil {
		return fmt.Errorf("token: write end of file: %w", err)
	}
	r.reset()
	return nil
}
