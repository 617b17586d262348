package httpd

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lanmirror/lanmirror/internal/distcache"
)

// serveBody answers r with b: Content-Length when the size is known,
// Last-Modified, Accept-Ranges, single-range 206 and 416, HEAD without a
// body, and 304 for If-Modified-Since on complete objects. b is closed.
//
// Every answer carries the Body's strong ETag. A Range is honoured with
// 206 only when the client's If-Range (if any) equals the ETag (or, for
// an untainted object, is its Last-Modified date); otherwise the whole
// object is sent with 200, as RFC 9110 says. For a tainted object (a
// transfer of it was recently aborted after unverified bytes went out: a
// corrupt copy of the right size whose digest then failed), a Range that
// continues a transfer (from an offset > 0) without If-Range proof is
// refused with 409: such a client may hold a corrupt head, and neither
// 206 nor 200 is safe for it. wget answered 200 to its Range retry skips
// the bytes it already has and keeps the corrupt head (exit 0, spliced
// file), and a 416 makes it stop with exit 0 and a short file; a 4xx
// makes wget and curl fail, leaving the partial file for Portage to
// discard.
//
// When the body fails before the announced length is sent (an upstream
// transfer that cannot be completed), the connection is aborted, so the
// client sees a broken transfer, never a short file presented as complete:
// with Content-Length the connection closes early; when the size is not
// known the response is chunked and the terminating chunk is never sent.
func (s *Server) serveBody(w http.ResponseWriter, r *http.Request, b Body, outcome distcache.Outcome) {
	defer b.Close()
	setOutcome(w, string(outcome))
	complete := outcome == distcache.Hit || outcome == distcache.Revalidated
	size := b.Size()
	mod := b.ModTime()
	h := w.Header()
	ct := b.ContentType()
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	h.Set("Accept-Ranges", "bytes")
	h.Set("X-Cache", string(outcome))
	if !mod.IsZero() {
		h.Set("Last-Modified", mod.UTC().Format(http.TimeFormat))
	}
	etag := b.ETag()
	if etag != "" {
		h.Set("ETag", etag)
	}
	if complete && notModified(r, mod) {
		h.Del("Content-Type")
		w.WriteHeader(http.StatusNotModified)
		return
	}

	rangeSpec := r.Header.Get("Range")
	proven := false // the client showed it holds bytes of this content
	if rangeSpec != "" {
		var ok bool
		ok, proven = ifRangeMatches(r, mod, etag)
		if !ok {
			rangeSpec = ""
		}
	}
	if size < 0 && (rangeSpec != "" || !r.ProtoAtLeast(1, 1)) {
		// A range needs the full size, and an HTTP/1.0 client could not
		// tell a broken body from a complete one without a length (no
		// chunked encoding): wait for the download to end.
		if err := b.Wait(r.Context()); err != nil {
			cacheError(w, r, "download failed", err)
			return
		}
		size = b.Size()
		if size < 0 {
			rangeSpec = ""
		}
	}

	start, n, code := int64(0), size, http.StatusOK
	if rangeSpec != "" {
		st, ln, res := parseRange(rangeSpec, size)
		switch res {
		case rangeOK:
			if st > 0 && !proven && b.Tainted() {
				s.refuseContinuation(w, r, st, etag)
				return
			}
			start, n, code = st, ln, http.StatusPartialContent
			h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", st, st+ln-1, size))
		case rangeUnsatisfiable:
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
			h.Set("Content-Type", "text/plain; charset=utf-8")
			msg := fmt.Sprintf("416 range not satisfiable: %q, the object has %d bytes\n", rangeSpec, size)
			h.Set("Content-Length", strconv.Itoa(len(msg)))
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			if r.Method != http.MethodHead {
				io.WriteString(w, msg)
			}
			return
		}
	}
	if n >= 0 {
		h.Set("Content-Length", strconv.FormatInt(n, 10))
	}
	w.WriteHeader(code)
	if r.Method == http.MethodHead || n == 0 {
		return
	}

	if data, ok := inMemory(b); ok && complete && n > 0 {
		// A small file kept in memory: one write, no file calls.
		sent, err := w.Write(data[start : start+n])
		if int64(sent) < n {
			s.abort(r, int64(sent), n, err, true)
		}
		return
	}
	rd := b.NewReader(start)
	defer rd.Close()
	if complete && n > 0 {
		// Complete file: net/http sends it with sendfile (see
		// recorder.ReadFrom).
		copied, err := io.Copy(w, io.LimitReader(rd, n))
		if copied < n {
			s.abort(r, copied, n, err, true)
		}
		return
	}
	copied, err := streamCopy(w, rd, n)
	if err != nil || (n >= 0 && copied < n) {
		var we errWrite
		s.abort(r, copied, n, err, errors.As(err, &we))
	}
}

// inMemory returns the whole object when b serves it from memory
// (distcache's small files).
func inMemory(b Body) ([]byte, bool) {
	if m, ok := b.(interface{ Bytes() ([]byte, bool) }); ok {
		return m.Bytes()
	}
	return nil, false
}

// abort ends a response whose body could not be sent in full: the panic
// makes net/http close the connection without completing the response.
// clientSide tells a client that went away from a body that failed.
func (s *Server) abort(r *http.Request, sent, want int64, err error, clientSide bool) {
	if clientSide || r.Context().Err() != nil {
		s.log.Debug("client left before the end of the body", "url", r.RequestURI,
			"client", r.RemoteAddr, "sent", sent, "want", want, "err", err)
	} else {
		s.log.Warn("transfer broken, closing the connection", "url", r.RequestURI,
			"client", r.RemoteAddr, "sent", sent, "want", want, "err", err)
	}
	panic(http.ErrAbortHandler)
}

// errWrite marks errors writing to the client (as opposed to reading the body).
type errWrite struct{ error }

// streamCopy copies up to n bytes (all when n < 0) from rd to w, flushing
// after every read so clients following a download get bytes as they
// arrive. (The wait for upstream bytes does not count against the
// client's write deadline: the recorder sets it at each write.) A clean end of the body before n bytes is reported as
// io.ErrUnexpectedEOF.
func streamCopy(w http.ResponseWriter, rd io.Reader, n int64) (int64, error) {
	rc := http.NewResponseController(w)
	buf := make([]byte, 64<<10)
	var copied int64
	for n < 0 || copied < n {
		p := buf
		if n >= 0 && n-copied < int64(len(p)) {
			p = p[:n-copied]
		}
		m, err := rd.Read(p)
		if m > 0 {
			if _, werr := w.Write(p[:m]); werr != nil {
				return copied, errWrite{werr}
			}
			copied += int64(m)
			if ferr := rc.Flush(); ferr != nil && !errors.Is(ferr, http.ErrNotSupported) {
				return copied, errWrite{ferr}
			}
		}
		if err == io.EOF {
			if n >= 0 && copied < n {
				return copied, io.ErrUnexpectedEOF
			}
			return copied, nil
		}
		if err != nil {
			return copied, err
		}
	}
	return copied, nil
}

// notModified reports whether r's If-Modified-Since covers mod.
func notModified(r *http.Request, mod time.Time) bool {
	if mod.IsZero() || r.Header.Get("If-None-Match") != "" {
		return false
	}
	ims := r.Header.Get("If-Modified-Since")
	if ims == "" {
		return false
	}
	t, err := http.ParseTime(ims)
	if err != nil {
		return false
	}
	return !mod.Truncate(time.Second).After(t)
}

// refuseContinuation answers a Range continuation of a tainted object
// that the client did not prove with If-Range (see serveBody).
func (s *Server) refuseContinuation(w http.ResponseWriter, r *http.Request, from int64, etag string) {
	setOutcome(w, "REFUSED")
	s.log.Warn("Range continuation of a file whose earlier transfer sent unverified bytes refused",
		"url", r.RequestURI, "client", r.RemoteAddr, "from", from)
	w.Header().Del("ETag")
	textError(w, http.StatusConflict, fmt.Sprintf("409 conflict: a recent transfer of this file was aborted because the copy being "+
		"streamed failed its Manifest digest, so the %d bytes your partial file holds may be corrupt and cannot be continued; "+
		"delete the partial file and download it again (or send If-Range: %s with a Range to continue the verified file)\n", from, etag))
}

// ifRangeMatches reports whether a Range may be honoured given If-Range
// (ok), and whether the If-Range proves the client's bytes are of this
// content (proven: a strong entity tag equal to etag). No If-Range: ok,
// not proven. A date: ok when it equals mod, not proven (a date does not
// tell two copies apart).
func ifRangeMatches(r *http.Request, mod time.Time, etag string) (ok, proven bool) {
	ir := strings.TrimSpace(r.Header.Get("If-Range"))
	if ir == "" {
		return true, false
	}
	if strings.HasPrefix(ir, `"`) || strings.HasPrefix(ir, "W/") {
		// Strong comparison: weak tags never match.
		m := etag != "" && ir == etag
		return m, m
	}
	t, err := http.ParseTime(ir)
	if err != nil || mod.IsZero() {
		return false, false
	}
	return mod.Truncate(time.Second).Equal(t), false
}

type rangeResult int

const (
	rangeIgnore        rangeResult = iota // no usable range: serve 200
	rangeOK                               // serve 206
	rangeUnsatisfiable                    // serve 416
)

// parseRange parses a single byte range against size (known, >= 0).
// Several ranges, other units and malformed specs are ignored (RFC 9110
// allows serving the full representation then).
func parseRange(spec string, size int64) (start, length int64, res rangeResult) {
	const p = "bytes="
	if len(spec) < len(p) || !strings.EqualFold(spec[:len(p)], p) {
		return 0, 0, rangeIgnore
	}
	spec = strings.TrimSpace(spec[len(p):])
	if strings.Contains(spec, ",") {
		return 0, 0, rangeIgnore
	}
	first, last, ok := strings.Cut(spec, "-")
	if !ok {
		return 0, 0, rangeIgnore
	}
	first, last = strings.TrimSpace(first), strings.TrimSpace(last)
	if first == "" {
		// Suffix range: the last N bytes.
		k, err := strconv.ParseInt(last, 10, 64)
		if err != nil || k < 0 {
			return 0, 0, rangeIgnore
		}
		if k == 0 || size == 0 {
			return 0, 0, rangeUnsatisfiable
		}
		k = min(k, size)
		return size - k, k, rangeOK
	}
	a, err := strconv.ParseInt(first, 10, 64)
	if err != nil || a < 0 {
		return 0, 0, rangeIgnore
	}
	end := size - 1
	if last != "" {
		e, err := strconv.ParseInt(last, 10, 64)
		if err != nil || e < a {
			return 0, 0, rangeIgnore
		}
		end = min(e, size-1)
	}
	if a >= size {
		return 0, 0, rangeUnsatisfiable
	}
	return a, end - a + 1, rangeOK
}
