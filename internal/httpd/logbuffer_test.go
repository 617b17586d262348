package httpd

import (
	"strings"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/testutil"
)

// TestLogBuffer: lines wait while other requests are in flight, go out
// when the last one ends, after logFlushDelay at the latest while
// requests stay in flight, and at flush (Server.Close).
func TestLogBuffer(t *testing.T) {
	out := &testutil.Buffer{}
	l := &logBuffer{w: out}
	l.begin()
	l.begin()
	l.end([]byte("one\n"))
	if out.String() != "" {
		t.Fatalf("written with a request in flight: %q", out)
	}
	l.end([]byte("two\n"))
	if out.String() != "one\ntwo\n" {
		t.Fatalf("after the last request: %q", out)
	}

	// A request that stays in flight (a long download): the line of
	// another one goes out after the delay.
	l.begin()
	l.begin()
	l.end([]byte("three\n"))
	deadline := time.Now().Add(10 * logFlushDelay)
	for !strings.Contains(out.String(), "three") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(out.String(), "three\n") {
		t.Fatalf("line not written %v after it came: %q", 10*logFlushDelay, out)
	}

	// Many lines in flight: written in batches of logFlushSize.
	line := []byte(strings.Repeat("x", 99) + "\n")
	for range 2 * logFlushSize / len(line) {
		l.begin()
		l.end(line)
	}
	if n := strings.Count(out.String(), "x\n"); n < logFlushSize/len(line) {
		t.Fatalf("%d lines written of %d", n, 2*logFlushSize/len(line))
	}
	l.begin()
	l.end([]byte("last\n"))
	l.flush()
	if !strings.HasSuffix(out.String(), "last\n") {
		t.Fatal("flush did not write the rest")
	}
}
