package sender

import (
	"context"
	"io"
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
	rdl, wdl  func(time.Time) error
	stop      func() bool
	// beforeRead, when set, runs before each read from the connection
	// (the session flushes its buffered output there).
	beforeRead func() error
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
	if c.rdl != nil {
		_ = c.rdl(time.Now().Add(c.timeout))
	}
	n, err := c.r.Read(p)
	c.nr.Add(int64(n))
	return n, err
}

func (c *countingRW) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	if c.wdl != nil {
		_ = c.wdl(time.Now().Add(c.timeout))
	}
	n, err := c.w.Write(p)
	c.nw.Add(int64(n))
	c.lastWrite.Store(time.Now().UnixNano())
	return n, err
}
