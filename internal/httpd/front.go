package httpd

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lanmirror/lanmirror/internal/acl"
	"github.com/lanmirror/lanmirror/internal/connlimit"
	"github.com/lanmirror/lanmirror/internal/distcache"
)

// The front answers the commonest request of a busy LAN mirror, a GET or
// HEAD of a small distfile kept in memory, without net/http: net/http
// spends several times the CPU of the answer itself on its per-request
// objects and goroutine hand-offs, and that capped cache hits at under
// half of nginx's pace (bench/http.sh).
//
// Every connection starts in the front. It reads a request's head into a
// pooled buffer and answers it itself only when the request is plain: an
// origin-form GET or HEAD under /distfiles/ of HTTP/1.1, no body, no
// conditional or Range headers, a client the allow list admits, and a
// distfile the cache engine holds in memory now (distcache's
// CachedDistfile). Anything else, from the first byte it read, is handed
// to net/http with the bytes already read put back in front of the
// connection: net/http then answers that request and every later one on
// the connection, exactly as without the front. So the front never has
// to understand more than the plain case, and any doubt costs only
// speed.
//
// The answer is the one serveBody gives (status, headers, body; Date as
// net/http writes it), with one access-log line and the same metrics, in
// one writev. Timeouts are those of net/http's server: the first request
// head within ReadHeaderTimeout of the accept, later ones within it from
// their first byte, IdleTimeout between requests, WriteIdleTimeout for
// the answer.

// frontBufSize bounds a request head the front reads; a longer one goes
// to net/http (which allows 1 MiB).
const frontBufSize = 4 << 10

var frontBufs = sync.Pool{New: func() any { b := make([]byte, frontBufSize); return &b }}

// frontListener accepts connections from the real listener, runs each in
// the front and yields to net/http (its Accept) those the front hands on.
type frontListener struct {
	inner net.Listener
	s     *Server
	lim   *connlimit.PerClient // nil: no per-client limit

	handoff chan net.Conn
	done    chan struct{}
	start   sync.Once
	stop    sync.Once
	err     error // why the accept loop ended; read after done

	closing atomic.Bool
	mu      sync.Mutex
	conns   map[*frontConn]struct{} // served by the front now
}

func newFrontListener(s *Server, ln net.Listener, lim *connlimit.PerClient) *frontListener {
	return &frontListener{inner: ln, s: s, lim: lim, handoff: make(chan net.Conn),
		done: make(chan struct{}), conns: map[*frontConn]struct{}{}}
}

// Accept returns the next connection for net/http.
func (l *frontListener) Accept() (net.Conn, error) {
	l.start.Do(func() { go l.acceptLoop() })
	select {
	case c := <-l.handoff:
		return c, nil
	case <-l.done:
		return nil, l.err
	}
}

// Close stops accepting and ends the front's idle connections (those in
// the middle of an answer end after it); net/http's Shutdown and Close
// call it.
func (l *frontListener) Close() error {
	err := l.inner.Close()
	l.closing.Store(true)
	l.mu.Lock()
	for c := range l.conns {
		// A connection sets idle before it looks at closing and then
		// waits: either it sees closing, or this wakes its read.
		if c.idle.Load() {
			c.raw.SetReadDeadline(time.Unix(1, 0))
		}
	}
	l.mu.Unlock()
	return err
}

func (l *frontListener) Addr() net.Addr { return l.inner.Addr() }

// acceptLoop accepts until the listener fails for good, retrying
// temporary errors (too many open files) with a growing pause, as
// net/http does.
func (l *frontListener) acceptLoop() {
	var pause time.Duration
	for {
		c, err := l.inner.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Temporary() && !l.closing.Load() { // (deprecated, but what net/http checks)
				pause = min(max(2*pause, 5*time.Millisecond), time.Second)
				l.s.log.Warn("http accept failed; retrying", "err", err, "pause", pause)
				select {
				case <-time.After(pause):
					continue
				case <-l.done:
					return
				}
			}
			l.stop.Do(func() {
				l.err = err
				close(l.done)
			})
			return
		}
		pause = 0
		release := func() {}
		if l.lim != nil {
			r, ok := l.lim.Acquire(c.RemoteAddr())
			if !ok {
				go l.s.refuseOverLimit(c, l.lim.Max())
				continue
			}
			release = r
		}
		go l.serve(&frontConn{l: l, raw: c, release: release})
	}
}

// frontConn is one connection while the front serves it.
type frontConn struct {
	l       *frontListener
	raw     net.Conn
	release func() // the per-client slot
	remote  string // the client's address, for the access log
	client  netip.Addr
	vec     [2][]byte
	idle    atomic.Bool // waiting for a request (Close wakes it)
}

// serve runs the front's request loop on c until the connection ends or
// is handed to net/http.
func (l *frontListener) serve(c *frontConn) {
	s := l.s
	bp := frontBufs.Get().(*[]byte)
	buf := *bp
	handed := false
	l.track(c, true)
	defer func() {
		l.track(c, false)
		frontBufs.Put(bp)
		if !handed {
			c.raw.Close()
			c.release()
		}
	}()
	c.remote = c.raw.RemoteAddr().String()
	c.client, _ = acl.AddrOf(c.remote)

	start, end := 0, 0 // buf[start:end] holds bytes read and not yet used
	first := true
	for {
		// Read until buf[start:end] holds a whole request head.
		headEnd := -1
		var headDeadline time.Time
		for {
			if i := bytes.Index(buf[start:end], crlf2); i >= 0 {
				headEnd = start + i + len(crlf2)
				break
			}
			if end-start > 0 && bytes.Contains(buf[start:end], lf2) {
				break // bare LF line ends: net/http's business
			}
			if end == len(buf) {
				if start == 0 {
					break // a head longer than the buffer
				}
				end = copy(buf, buf[start:end])
				start = 0
			}
			switch {
			case first:
				if headDeadline.IsZero() {
					headDeadline = time.Now().Add(s.opt.ReadHeaderTimeout)
					c.raw.SetReadDeadline(headDeadline)
				}
			case end == start:
				c.idle.Store(true)
				if l.closing.Load() {
					return
				}
				c.raw.SetReadDeadline(time.Now().Add(s.opt.IdleTimeout))
			case headDeadline.IsZero():
				headDeadline = time.Now().Add(s.opt.ReadHeaderTimeout)
				c.raw.SetReadDeadline(headDeadline)
			}
			n, err := c.raw.Read(buf[end:])
			c.idle.Store(false)
			end += n
			if err != nil {
				if end > start && !isTimeout(err) {
					break // let net/http answer what came (e.g. 400)
				}
				return // idle timeout, slowloris, closed or reset
			}
		}
		first = false
		if headEnd < 0 {
			handed = true
			l.handOn(c, buf[start:end])
			return
		}
		req, ok := parsePlain(buf[start:headEnd])
		if !ok || !s.allow.Load().Contains(c.client) {
			handed = true
			l.handOn(c, buf[start:end])
			return
		}
		b, ok := s.cachedHit(req.name)
		if !ok {
			handed = true
			l.handOn(c, buf[start:end])
			return
		}
		start = headEnd
		if start == end {
			start, end = 0, 0
		}
		if !s.frontAnswer(c, &req, b) || req.close || l.closing.Load() {
			return
		}
	}
}

// track records c as served by the front (add) or not any more.
func (l *frontListener) track(c *frontConn, add bool) {
	l.mu.Lock()
	if add {
		l.conns[c] = struct{}{}
	} else {
		delete(l.conns, c)
	}
	l.mu.Unlock()
}

// handOn gives c to net/http with read (bytes of the connection already
// read) to be read again first.
func (l *frontListener) handOn(c *frontConn, read []byte) {
	// net/http sets the deadlines it needs; the front's last ones must
	// not cut it.
	c.raw.SetDeadline(time.Time{})
	hc := &handedConn{Conn: c.raw, replay: append([]byte(nil), read...), release: c.release}
	select {
	case l.handoff <- hc:
	case <-l.done:
		hc.Close()
	}
}

var (
	crlf2 = []byte("\r\n\r\n")
	lf2   = []byte("\n\n")
)

// handedConn is a connection net/http serves after the front: the bytes
// the front read come first. It keeps the connection's sendfile path
// (ReadFrom) and half-close.
type handedConn struct {
	net.Conn
	replay  []byte
	release func()
	once    sync.Once
}

func (c *handedConn) Read(p []byte) (int, error) {
	if len(c.replay) > 0 {
		n := copy(p, c.replay)
		c.replay = c.replay[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

func (c *handedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// ReadFrom lets net/http send files with sendfile.
func (c *handedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// CloseWrite half-closes the connection, as net/http does before it
// closes one after an error answer.
func (c *handedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// plainRequest is a request the front may answer.
type plainRequest struct {
	head   bool   // HEAD, else GET
	target string // the request target, as sent
	name   string // the distfile
	close  bool   // Connection: close
}

// parsePlain parses a request head (ending in CRLF CRLF) and reports
// whether it is plain (see the comment at the top of this file). It
// refuses rather than guesses: every refusal goes to net/http.
func parsePlain(h []byte) (req plainRequest, ok bool) {
	line, rest, found := bytes.Cut(h, crlf)
	if !found {
		return req, false
	}
	switch {
	case bytes.HasPrefix(line, getSP):
		line = line[len(getSP):]
	case bytes.HasPrefix(line, headSP):
		req.head = true
		line = line[len(headSP):]
	default:
		return req, false
	}
	target, proto, found := bytes.Cut(line, sp)
	if !found || !bytes.Equal(proto, http11) || !bytes.HasPrefix(target, distfilesPath) {
		return req, false
	}
	for _, ch := range target {
		// Escapes, queries, fragments and anything unusual: net/http.
		if ch <= ' ' || ch >= 0x7f || ch == '%' || ch == '?' || ch == '#' || ch == '\\' {
			return req, false
		}
	}
	name, ok := mirrorName(string(target[len(distfilesPath):]))
	if !ok {
		return req, false
	}
	req.target, req.name = string(target), name

	hosts := 0
	for len(rest) > 0 {
		line, rest, found = bytes.Cut(rest, crlf)
		if !found {
			return req, false
		}
		if len(line) == 0 {
			break // the empty line ending the head
		}
		key, value, found := bytes.Cut(line, colon)
		if !found || !validFieldName(key) || !validFieldValue(value) {
			return req, false
		}
		value = bytes.Trim(value, " \t")
		switch {
		case bytes.EqualFold(key, hostKey):
			hosts++
			if !validHost(value) {
				return req, false
			}
		case bytes.EqualFold(key, connectionKey):
			switch {
			case bytes.EqualFold(value, closeToken):
				req.close = true
			case bytes.EqualFold(value, keepAliveToken):
			default:
				return req, false
			}
		case bytes.EqualFold(key, contentLengthKey):
			if !bytes.Equal(value, zero) {
				return req, false
			}
		default:
			if meaningful(key) {
				return req, false
			}
		}
	}
	return req, hosts == 1
}

var (
	crlf             = []byte("\r\n")
	sp               = []byte(" ")
	colon            = []byte(":")
	getSP            = []byte("GET ")
	headSP           = []byte("HEAD ")
	http11           = []byte("HTTP/1.1")
	distfilesPath    = []byte("/distfiles/")
	hostKey          = []byte("Host")
	connectionKey    = []byte("Connection")
	contentLengthKey = []byte("Content-Length")
	closeToken       = []byte("close")
	keepAliveToken   = []byte("keep-alive")
	zero             = []byte("0")
)

// meaningfulHeaders change the answer or the connection (ranges,
// conditions, bodies, upgrades, proxy hops): a request with any of them
// goes to net/http. The others (User-Agent, Accept, Accept-Encoding,
// which lanmirror does not act on) do not matter to the answer.
var meaningfulHeaders = [][]byte{
	[]byte("Range"), []byte("If-Range"), []byte("If-Match"), []byte("If-None-Match"),
	[]byte("If-Modified-Since"), []byte("If-Unmodified-Since"), []byte("Transfer-Encoding"),
	[]byte("Expect"), []byte("Upgrade"), []byte("TE"), []byte("Trailer"),
	[]byte("Proxy-Connection"), []byte("Proxy-Authorization"), []byte("Authorization"),
}

func meaningful(key []byte) bool {
	for _, m := range meaningfulHeaders {
		if bytes.EqualFold(key, m) {
			return true
		}
	}
	return false
}

// validFieldName: a token (RFC 9110 tchar).
func validFieldName(k []byte) bool { return alnumOr(k, "!#$%&'*+-.^_`|~") }

// validFieldValue: no control characters but tab, no obs-text.
func validFieldValue(v []byte) bool {
	for _, ch := range v {
		if (ch < ' ' && ch != '\t') || ch >= 0x7f {
			return false
		}
	}
	return true
}

// validHost: a host name, IPv4 or bracketed IPv6 address, and port.
func validHost(v []byte) bool { return alnumOr(v, ".-:[]_") }

// alnumOr reports whether v is not empty and holds only ASCII letters,
// digits and bytes of extra.
func alnumOr(v []byte, extra string) bool {
	if len(v) == 0 {
		return false
	}
	for _, ch := range v {
		switch {
		case 'a' <= ch && ch <= 'z', 'A' <= ch && ch <= 'Z', '0' <= ch && ch <= '9':
		case strings.IndexByte(extra, ch) >= 0:
		default:
			return false
		}
	}
	return true
}

// mirrorName returns the distfile a /distfiles/ path below the prefix
// names: "<name>" or "<hh>/<name>" with hh the name's GLEP 75 directory;
// layout.conf and anything else: ok false (serveMirror's business).
func mirrorName(p string) (string, bool) {
	dir, name, nested := cutSlash(p)
	if !nested {
		name = p
	}
	if name == "" || name == "layout.conf" || checkSegment(name) != nil {
		return "", false
	}
	if nested && (checkSegment(dir) != nil || dir != hashDir(name)) {
		return "", false
	}
	return name, true
}

func cutSlash(p string) (before, after string, found bool) {
	for i := 0; i < len(p); i++ {
		if p[i] == '/' {
			return p[:i], p[i+1:], true
		}
	}
	return p, "", false
}

// cachedHit returns the in-memory Body of distfile name when the engine
// has one now (httpd.Cache engines that can tell: distcache's).
func (s *Server) cachedHit(name string) (Body, bool) {
	hc, ok := s.opt.Cache.(interface {
		CachedDistfile(name string) (Body, bool)
	})
	if !ok {
		return nil, false
	}
	b, ok := hc.CachedDistfile(name)
	if !ok {
		return nil, false
	}
	if _, mem := inMemory(b); !mem {
		b.Close()
		return nil, false
	}
	return b, true
}

// frontAnswer writes the answer to a plain request for b (a distfile in
// memory), then its access-log line; false when the connection failed.
func (s *Server) frontAnswer(c *frontConn, req *plainRequest, b Body) bool {
	defer b.Close()
	began := time.Now()
	s.front.Add(1) // (before the answer: a test reads it once it has the answer)
	s.alog.begin()
	data, _ := inMemory(b)
	hp := headBufs.Get().(*[]byte)
	h := s.appendHitHead((*hp)[:0], b, began, req.close)
	c.vec[0] = h
	n := len(h)
	bufs := net.Buffers(c.vec[:1])
	var want int64
	if !req.head {
		c.vec[1] = data
		bufs = net.Buffers(c.vec[:2])
		want = int64(len(data))
	}
	c.raw.SetWriteDeadline(began.Add(s.opt.WriteIdleTimeout))
	written, err := bufs.WriteTo(c.raw)
	*hp = h
	headBufs.Put(hp)
	c.vec = [2][]byte{}
	body := max(written-int64(n), 0)
	aborted := err != nil || body < want
	method := http.MethodGet
	if req.head {
		method = http.MethodHead
	}
	s.logRequest(began, c.remote, method, req.target, http.StatusOK, body,
		string(distcache.Hit), aborted)
	return !aborted
}

var headBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// appendHitHead appends the status line and headers serveBody writes for
// a complete hit answered whole.
func (s *Server) appendHitHead(h []byte, b Body, now time.Time, closing bool) []byte {
	h = append(h, "HTTP/1.1 200 OK\r\nAccept-Ranges: bytes\r\nContent-Length: "...)
	h = strconv.AppendInt(h, b.Size(), 10)
	h = append(h, "\r\nContent-Type: "...)
	if ct := b.ContentType(); ct != "" {
		h = append(h, ct...)
	} else {
		h = append(h, "application/octet-stream"...)
	}
	h = append(h, "\r\nDate: "...)
	h = s.appendDate(h, now)
	if et := b.ETag(); et != "" {
		h = append(h, "\r\nEtag: "...)
		h = append(h, et...)
	}
	if mod := b.ModTime(); !mod.IsZero() {
		h = append(h, "\r\nLast-Modified: "...)
		h = mod.UTC().AppendFormat(h, http.TimeFormat)
	}
	h = append(h, "\r\nX-Cache: "...)
	h = append(h, distcache.Hit...)
	if closing {
		h = append(h, "\r\nConnection: close"...)
	}
	return append(h, "\r\n\r\n"...)
}

// dateStamp is the Date header value of one second (Server.date).
type dateStamp struct {
	sec int64
	b   []byte
}

// appendDate appends now as an HTTP date, formatted once a second.
func (s *Server) appendDate(h []byte, now time.Time) []byte {
	sec := now.Unix()
	d := s.date.Load()
	if d == nil || d.sec != sec {
		d = &dateStamp{sec: sec, b: now.UTC().AppendFormat(nil, http.TimeFormat)}
		s.date.Store(d)
	}
	return append(h, d.b...)
}
