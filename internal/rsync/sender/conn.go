package sender

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"
)

// countingRW counts the bytes that cross the connection, tracks the time
// of the last write (for keep-alives) and applies the I/O timeout as read
// and write deadlines when the connection supports them.
type countingRW struct {
	ctx       context.Context
	r         io.Reader
	w         io.Writer
	nr, nw    atomic.Int64
	lastWrite atomic.Int64 // unix nanoseconds
	timeout   time.Duration
	rdl, wdl  func(time.Time) error // per-operation deadlines: set when timeout > 0 or in setup
	setR      func(time.Time) error // the connection's deadline setters (nil: none)
	setW      func(time.Time) error
	stop      func() bool
	// setup: while inSetup, the time spent blocked in reads and writes is
	// taken from setupLeft (nanoseconds); none left ends the session.
	inSetup   atomic.Bool
	setupLeft atomic.Int64
	setupMax  time.Duration
	// beforeRead, when set, runs before each read from the connection
	// (the session flushes its buffered output there).
	beforeRead func() error

	// rate limits writes to bytes per second (--bwlimit); 0: no limit.
	// The bucket state is only touched by Write, which the MuxWriter
	// serializes.
	rate     float64
	bwTokens float64
	bwLast   time.Time
}

func newCountingRW(ctx context.Context, conn io.ReadWriter, timeout time.Duration) *countingRW {
	c := &countingRW{ctx: ctx, r: conn, w: conn, timeout: timeout, stop: func() bool { return false }}
	c.lastWrite.Store(time.Now().UnixNano())
	var rdl, wdl func(time.Time) error
	switch d := conn.(type) {
	case interface {
		SetReadDeadline(time.Time) error
		SetWriteDeadline(time.Time) error
	}:
		rdl, wdl = d.SetReadDeadline, d.SetWriteDeadline
	case interface{ SetDeadline(time.Time) error }:
		rdl, wdl = d.SetDeadline, d.SetDeadline
	default:
		return c
	}
	c.setR, c.setW = rdl, wdl
	if timeout > 0 {
		c.rdl, c.wdl = rdl, wdl
	}
	// Cancellation unblocks any pending read or write.
	c.stop = context.AfterFunc(ctx, func() {
		_ = rdl(time.Unix(1, 0))
		_ = wdl(time.Unix(1, 0))
	})
	return c
}

func (c *countingRW) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	// About to wait for the client: send what is pending first, as stock
	// rsync does, so the client never waits for data we hold back.
	if c.beforeRead != nil {
		if err := c.beforeRead(); err != nil {
			return 0, err
		}
	}
	setup := c.inSetup.Load()
	start := time.Now()
	if setup {
		if err := c.setupDeadline(c.setR, start); err != nil {
			return 0, err
		}
	} else if c.rdl != nil {
		_ = c.rdl(start.Add(c.timeout))
	}
	n, err := c.r.Read(p)
	c.nr.Add(int64(n))
	if setup {
		err = c.spent(start, err)
	}
	return n, err
}

// errSetupStalled ends a session whose client kept the setup (up to the
// end of the file list) waiting longer than Config.SetupTimeout.
var errSetupStalled = errors.New("client stalled the session setup")

// startSetup starts the setup budget: until endSetup, reads and writes
// may block for budget in total.
func (c *countingRW) startSetup(budget time.Duration) {
	if budget <= 0 || c.setR == nil {
		return
	}
	c.setupMax = budget
	c.setupLeft.Store(int64(budget))
	c.inSetup.Store(true)
}

// endSetup ends the setup budget; the module's timeout (if any) applies
// from here.
func (c *countingRW) endSetup() {
	if !c.inSetup.Swap(false) {
		return
	}
	if c.timeout <= 0 {
		_ = c.setR(time.Time{})
		_ = c.setW(time.Time{})
	}
}

// setupDeadline sets the deadline of one operation during setup: what is
// left of the budget, or the module timeout if sooner.
func (c *countingRW) setupDeadline(set func(time.Time) error, now time.Time) error {
	left := time.Duration(c.setupLeft.Load())
	if left <= 0 {
		return fmt.Errorf("%w: waited for it %v in total (handshake timeout): %w", errSetupStalled, c.setupMax, os.ErrDeadlineExceeded)
	}
	d := now.Add(left)
	if c.timeout > 0 && c.timeout < left {
		d = now.Add(c.timeout)
	}
	return set(d)
}

// spent takes the time an operation blocked from the setup budget and
// names a deadline it caused.
func (c *countingRW) spent(start time.Time, err error) error {
	left := c.setupLeft.Add(-int64(time.Since(start)))
	if err != nil && left <= 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w: waited for it %v in total (handshake timeout): %w", errSetupStalled, c.setupMax, err)
	}
	return err
}

func (c *countingRW) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	setup := c.inSetup.Load()
	start := time.Now()
	if setup {
		if err := c.setupDeadline(c.setW, start); err != nil {
			return 0, err
		}
	} else if c.wdl != nil {
		_ = c.wdl(start.Add(c.timeout))
	}
	n, err := c.w.Write(p)
	c.nw.Add(int64(n))
	if setup {
		err = c.spent(start, err)
	}
	c.lastWrite.Store(time.Now().UnixNano())
	if err == nil && c.rate > 0 {
		c.throttle(n)
	}
	return n, err
}

// bwBurst is how many bytes may go out at once under --bwlimit.
const bwBurst = 32 * 1024

// throttle sleeps as long as needed to keep writes at c.rate bytes per
// second (a token bucket holding at most bwBurst bytes).
func (c *countingRW) throttle(n int) {
	now := time.Now()
	if c.bwLast.IsZero() {
		c.bwLast, c.bwTokens = now, bwBurst
	}
	c.bwTokens = min(c.bwTokens+c.rate*now.Sub(c.bwLast).Seconds(), bwBurst)
	c.bwLast = now
	c.bwTokens -= float64(n)
	if c.bwTokens < 0 {
		d := time.Duration(-c.bwTokens / c.rate * float64(time.Second))
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
		}
	}
}
