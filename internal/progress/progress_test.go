package progress

import (
	"strings"
	"testing"
	"time"
)

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 30: "5.0 GiB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %s, want %s", n, got, want)
		}
	}
}

// Off a terminal a Transfer writes plain lines, no more often than Every.
func TestTransferPlainLines(t *testing.T) {
	var b strings.Builder
	tr := NewTransfer(&b, "pulling")
	tr.Every = 0
	tr.Set(1, 100)
	tr.Set(2, 2048)
	tr.Every = time.Hour
	tr.Set(3, 4096)
	tr.Finish()
	if got, want := b.String(), "pulling: 1 files, 100 B\npulling: 2 files, 2.0 KiB\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
