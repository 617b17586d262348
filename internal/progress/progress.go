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
