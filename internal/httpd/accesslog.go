package httpd

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/lanmirror/lanmirror/internal/metrics"
)

// recorder wraps a ResponseWriter to learn the status, the body bytes and
// the cache outcome of a request, for the access log and the metrics. It
// also bounds every write: the client must accept each piece within
// writeIdleTimeout, so one that stops reading is disconnected and holds no
// connection, goroutine or file for ever, on every route.
type recorder struct {
	http.ResponseWriter
	status  int
	bytes   int64
	outcome string // HIT, MISS, JOIN, REVALIDATED, ALIAS, DENY...; "" is "-"
	began   time.Time
	rc      *http.ResponseController
}

func newRecorder(w http.ResponseWriter, _ *http.Request) *recorder {
	rw := &recorder{ResponseWriter: w, began: time.Now()}
	rw.rc = http.NewResponseController(w)
	return rw
}

// extend moves the write deadline writeIdleTimeout ahead. net/http clears
// it once the response is complete, before the next request.
func (w *recorder) extend() {
	w.rc.SetWriteDeadline(time.Now().Add(writeIdleTimeout))
}

// WriteHeader records the status.
func (w *recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write counts body bytes.
func (w *recorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.extend()
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// sendPiece is how much of a file is sent per write deadline.
const sendPiece = 8 << 20

// ReadFrom keeps net/http's sendfile path for files while counting bytes:
// a length-limited source (what io.CopyN, io.LimitReader and
// http.ServeContent pass) is sent in pieces of sendPiece bytes, each with
// a fresh deadline, still through one *io.LimitedReader level so the file
// underneath reaches sendfile.
func (w *recorder) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	rf, ok := w.ResponseWriter.(io.ReaderFrom)
	if !ok {
		return io.Copy(struct{ io.Writer }{w}, src)
	}
	lr, limited := src.(*io.LimitedReader)
	if !limited {
		w.extend()
		n, err := rf.ReadFrom(src)
		w.bytes += n
		return n, err
	}
	var total int64
	for lr.N > 0 {
		piece := &io.LimitedReader{R: lr.R, N: min(lr.N, sendPiece)}
		w.extend()
		n, err := rf.ReadFrom(piece)
		lr.N -= n
		total += n
		w.bytes += n
		if err != nil {
			return total, err
		}
		if n == 0 {
			break
		}
	}
	return total, nil
}

// Unwrap lets http.ResponseController reach the connection.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush sends buffered bytes to the client.
func (w *recorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		w.extend()
		f.Flush()
	}
}

// setOutcome records the cache outcome of w if it is a recorder.
func setOutcome(w http.ResponseWriter, o string) {
	if rw, ok := w.(*recorder); ok {
		rw.outcome = o
	}
}

// finish writes the access-log line and updates the metrics. It runs
// deferred, also when a handler aborts the connection with a panic.
func (s *Server) finish(w *recorder, r *http.Request) {
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	aborted := false
	if p := recover(); p != nil {
		if p != http.ErrAbortHandler {
			s.log.Error("handler panic", "url", r.RequestURI, "panic", fmt.Sprint(p))
		}
		aborted = true
		defer panic(p)
	}
	outcome := w.outcome
	if outcome == "" {
		outcome = "-"
	}
	d := time.Since(w.began)
	line := fmt.Sprintf("%s %s %s %s %d %d %s %.3fs%s\n",
		time.Now().UTC().Format(time.RFC3339), r.RemoteAddr, r.Method, strconv.Quote(r.RequestURI),
		status, w.bytes, outcome, d.Seconds(), abortedMark(aborted))
	s.logMu.Lock()
	io.WriteString(s.opt.AccessLog, line)
	s.logMu.Unlock()
	s.recent.add(line)
	s.hits.count(outcome, status, w.bytes)
	metrics.HTTPRequests.WithLabelValues(outcome, strconv.Itoa(status)).Inc()
	metrics.HTTPBytes.Add(float64(w.bytes))
}

func abortedMark(aborted bool) string {
	if aborted {
		return " ABORTED"
	}
	return ""
}

// recentRing keeps the last access-log lines for the status page.
type recentRing struct {
	mu    sync.Mutex
	lines [20]string
	next  int
	n     int
}

func (r *recentRing) add(line string) {
	r.mu.Lock()
	r.lines[r.next] = line
	r.next = (r.next + 1) % len(r.lines)
	if r.n < len(r.lines) {
		r.n++
	}
	r.mu.Unlock()
}

// list returns the lines, newest first.
func (r *recentRing) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, r.n)
	for i := 1; i <= r.n; i++ {
		out = append(out, r.lines[(r.next-i+len(r.lines))%len(r.lines)])
	}
	return out
}
