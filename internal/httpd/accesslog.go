package httpd

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lanmirror/lanmirror/internal/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// recorder wraps a ResponseWriter to learn the status, the body bytes and
// the cache outcome of a request, for the access log and the metrics. It
// also bounds every write: the client must accept each piece within
// Options.WriteIdleTimeout, so one that stops reading is disconnected and holds no
// connection, goroutine or file for ever, on every route.
type recorder struct {
	http.ResponseWriter
	status  int
	bytes   int64
	outcome string // HIT, MISS, JOIN, REVALIDATED, ALIAS, DENY...; "" is "-"
	began   time.Time
	rc      *http.ResponseController
	idle    time.Duration // Options.WriteIdleTimeout
}

func newRecorder(w http.ResponseWriter, _ *http.Request) *recorder {
	rw := &recorder{ResponseWriter: w, began: time.Now()}
	rw.rc = http.NewResponseController(w)
	return rw
}

// extend moves the write deadline w.idle ahead. net/http clears
// it once the response is complete, before the next request.
func (w *recorder) extend() {
	idle := w.idle
	if idle <= 0 {
		idle = DefaultWriteIdleTimeout
	}
	w.rc.SetWriteDeadline(time.Now().Add(idle))
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
	s.logRequest(w.began, r.RemoteAddr, r.Method, r.RequestURI, status, w.bytes, outcome, aborted)
}

// logRequest writes the access-log line of a request that began at began
// and ends now (s.alog.begin was called for it), and counts it in the
// metrics and the status page's figures.
func (s *Server) logRequest(began time.Time, client, method, uri string, status int, bytes int64, outcome string, aborted bool) {
	now := time.Now()
	bp := lineBufs.Get().(*[]byte)
	line := appendLogLine((*bp)[:0], now.UTC(), client, method, uri, status, bytes, outcome, now.Sub(began), aborted)
	s.alog.end(line)
	s.recent.add(string(line))
	*bp = line
	lineBufs.Put(bp)
	s.hits.count(outcome, status, bytes)
	s.reqs.counter(outcome, status).Inc()
	metrics.HTTPBytes.Add(float64(bytes))
}

// logBuffer batches access-log lines into fewer writes under load: the
// lines go out when no request is in flight any more (so a client that
// waits for its answer finds its line written), when 32 KiB are waiting,
// or at most logFlushDelay after a line came, whichever is first; Close
// writes the rest.
type logBuffer struct {
	w        io.Writer
	inflight atomic.Int64

	mu    sync.Mutex
	buf   []byte
	timer *time.Timer
}

const (
	logFlushSize  = 32 << 10
	logFlushDelay = time.Second
)

// begin counts a request in flight.
func (l *logBuffer) begin() { l.inflight.Add(1) }

// end takes the line of a request that ends.
func (l *logBuffer) end(line []byte) {
	idle := l.inflight.Add(-1) <= 0
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, line...)
	switch {
	case idle || len(l.buf) >= logFlushSize:
		l.flushLocked()
	case l.timer == nil:
		l.timer = time.AfterFunc(logFlushDelay, l.flush)
	}
}

// flush writes what is waiting.
func (l *logBuffer) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushLocked()
}

func (l *logBuffer) flushLocked() {
	if len(l.buf) > 0 {
		l.w.Write(l.buf)
		l.buf = l.buf[:0]
	}
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
}

// lineBufs recycles access-log line buffers.
var lineBufs = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// appendLogLine appends one access-log line: time, client, method, quoted
// URL, status, body bytes, outcome, duration in seconds, ABORTED.
func appendLogLine(b []byte, now time.Time, client, method, uri string, status int, bytes int64, outcome string, d time.Duration, aborted bool) []byte {
	b = now.AppendFormat(b, time.RFC3339)
	b = append(b, ' ')
	b = append(b, client...)
	b = append(b, ' ')
	b = append(b, method...)
	b = append(b, ' ')
	b = strconv.AppendQuote(b, uri)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, bytes, 10)
	b = append(b, ' ')
	b = append(b, outcome...)
	b = append(b, ' ')
	b = strconv.AppendFloat(b, d.Seconds(), 'f', 3, 64)
	b = append(b, 's')
	b = append(b, abortedMark(aborted)...)
	return append(b, '\n')
}

// requestCounters caches the request counter of each outcome and status
// (the label lookup hashes both labels every time).
type requestCounters struct {
	mu sync.RWMutex
	m  map[counterKey]prometheus.Counter
}

type counterKey struct {
	outcome string
	status  int
}

func (c *requestCounters) counter(outcome string, status int) prometheus.Counter {
	k := counterKey{outcome, status}
	c.mu.RLock()
	ctr, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return ctr
	}
	ctr = metrics.HTTPRequests.WithLabelValues(outcome, strconv.Itoa(status))
	c.mu.Lock()
	if c.m == nil {
		c.m = map[counterKey]prometheus.Counter{}
	}
	if len(c.m) < 1000 { // outcomes and statuses are few; bounded anyway
		c.m[k] = ctr
	}
	c.mu.Unlock()
	return ctr
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
