// Package progress draws progress bars for the cache tools (import,
// prefetch) when their output is a terminal, and formats byte counts.
package progress

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Bar is a progress bar on a terminal, nothing otherwise.
type Bar struct{ bar *progressbar.ProgressBar }

// New shows a bar on w only when w is a terminal; total counts bytes when
// bytes is set, else items.
func New(w io.Writer, total int64, desc string, bytes bool) *Bar {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return &Bar{}
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionClearOnFinish(),
	}
	if bytes {
		opts = append(opts, progressbar.OptionShowBytes(true), progressbar.OptionUseIECUnits(true))
	} else {
		opts = append(opts, progressbar.OptionShowCount())
	}
	return &Bar{bar: progressbar.NewOptions64(total, opts...)}
}

// Write counts len(b) bytes, so the bar can sit in an io.MultiWriter.
func (p *Bar) Write(b []byte) (int, error) {
	p.Add(int64(len(b)))
	return len(b), nil
}

// Add counts n more bytes or items.
func (p *Bar) Add(n int64) {
	if p.bar != nil {
		p.bar.Add64(n)
	}
}

// Finish completes the bar.
func (p *Bar) Finish() {
	if p.bar != nil {
		p.bar.Finish()
	}
}

// FormatBytes writes n with a binary unit (1.5 MiB).
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Transfer shows a transfer whose size is not known in advance (a tree
// pull): files and bytes so far, as a spinner bar on a terminal, else as a
// plain line at most every Every.
type Transfer struct {
	bar   *progressbar.ProgressBar
	w     io.Writer
	desc  string
	last  time.Time
	files int
	bytes int64
	// Every is the least time between plain lines (default 10s).
	Every time.Duration
}

// NewTransfer starts a Transfer display on w.
func NewTransfer(w io.Writer, desc string) *Transfer {
	t := &Transfer{w: w, desc: desc, last: time.Now(), Every: 10 * time.Second}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		t.bar = progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(desc),
			progressbar.OptionShowBytes(true),
			progressbar.OptionUseIECUnits(true),
			progressbar.OptionSpinnerType(14),
			// No spinner ticker: progressbar v3.19's ticker goroutine reads
			// the start time without its lock (a data race with Set64); the
			// spinner turns on every Set instead.
			progressbar.OptionSetSpinnerChangeInterval(0),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	return t
}

// Set reports the files and bytes transferred so far.
func (t *Transfer) Set(files int, bytes int64) {
	t.files, t.bytes = files, bytes
	if t.bar != nil {
		t.bar.Describe(fmt.Sprintf("%s: %d files, %s", t.desc, files, FormatBytes(bytes)))
		_ = t.bar.Set64(bytes)
		return
	}
	if time.Since(t.last) >= t.Every {
		t.last = time.Now()
		fmt.Fprintf(t.w, "%s: %d files, %s\n", t.desc, files, FormatBytes(bytes))
	}
}

// Finish ends the display (the bar is cleared; the caller prints the
// outcome).
func (t *Transfer) Finish() {
	if t.bar != nil {
		_ = t.bar.Finish()
	}
}
