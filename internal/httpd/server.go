// Package httpd is lanmirror's HTTP side: the GLEP 75 distfiles mirror
// (/distfiles/...), the classic forward proxy (absolute-form requests as
// wget and curl send them with http_proxy), fetch-through for Portage's
// FETCHCOMMAND (/fetch/...), binary packages (/binpkgs/...), read-only
// alias directories, /metrics and a status page. Every route checks the
// client against the allow list and writes one access-log line.
//
// The routes serve Bodies of the distfiles cache engine (internal/distcache)
// through the small Cache interface below, so that they can be tested with
// any engine.
//
// Client settings (SERVER is the host running lanmirror serve --http :8080):
//
//	# make.conf, mirror mode (GLEP 75 layout, hashed and flat paths):
//	GENTOO_MIRRORS="http://SERVER:8080"
//	# make.conf, the classic http-replicator setup (forward proxy):
//	http_proxy="http://SERVER:8080"
//	RESUMECOMMAND="/usr/bin/wget -t 5 --passive-ftp \${URI} -O \${DISTDIR}/\${FILE}"
//	# make.conf, fetch-through for every fetch, https included (see serveFetch):
//	FETCHCOMMAND="wget -t 3 -T 60 --passive-ftp -O \"\${DISTDIR}/\${FILE}\" \"http://SERVER:8080/fetch/\${FILE}?uri=\${URI}\""
//	RESUMECOMMAND="wget -c -t 3 -T 60 --passive-ftp -O \"\${DISTDIR}/\${FILE}\" \"http://SERVER:8080/fetch/\${FILE}?uri=\${URI}\""
//	# /etc/portage/binrepos.conf (--binpkgs and/or --binhost-upstream):
//	[lanmirror]
//	sync-uri = http://SERVER:8080/binpkgs
//
// The forward proxy also answers requests for this server itself, so
// clients with http_proxy set may use the other routes unchanged.
package httpd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lanmirror/lanmirror/internal/acl"
	"github.com/lanmirror/lanmirror/internal/config"
	"github.com/lanmirror/lanmirror/internal/distcache"
	"github.com/lanmirror/lanmirror/internal/metrics"
	"github.com/lanmirror/lanmirror/internal/status"
	"github.com/prometheus/client_golang/prometheus"
)

// Body is one object being served: complete in the cache, or still being
// downloaded (readers then block for bytes not yet there).
type Body interface {
	// Size is the full size in bytes, -1 while unknown.
	Size() int64
	// ModTime is the object's modification time (zero when unknown).
	ModTime() time.Time
	// ContentType is the media type to announce ("" for the default).
	ContentType() string
	// NewReader reads from offset off; it blocks for bytes not yet
	// downloaded and fails if the download fails.
	NewReader(off int64) io.ReadCloser
	// Wait blocks until the object is complete (nil) or failed.
	Wait(ctx context.Context) error
	// ETag is the strong entity tag (quoted) of exactly the bytes this
	// Body serves, "" when none: a Range with an If-Range equal to it is
	// answered with 206.
	ETag() string
	// Tainted reports that unverified bytes of this object recently
	// reached clients in a transfer that was then aborted: a Range
	// continuation without If-Range proof is refused (see serveBody).
	Tainted() bool
	// Close releases the Body.
	Close() error
}

// Object names a non-distfile object for Cache.Get.
type Object struct {
	// Key is the store key ("urls/<host>/<path>", "binhost/<path>").
	Key string
	// Sources are the URLs the object may be downloaded from, in order.
	Sources []string
	// Volatile objects are revalidated upstream after a freshness time.
	Volatile bool
}

// Cache is what the routes need from the cache engine. Errors are those of
// internal/distcache (ErrNotFound, ErrCorrupt, ErrUpstream, ErrBadName).
type Cache interface {
	// Get serves an arbitrary object by key.
	Get(ctx context.Context, o Object) (Body, distcache.Outcome, error)
	// Distfile serves a distfile by name: cache, then the mirrors, then
	// origins (full URLs) in order.
	Distfile(ctx context.Context, name string, origins ...string) (Body, distcache.Outcome, error)
}

// Stats reports the size in bytes and the number of files of the cache,
// for the status page.
type Stats func() (bytes int64, files int)

// Options configure a Server.
type Options struct {
	// Cache serves distfiles and proxied URLs. Required.
	Cache Cache
	// Allow lists the clients that may use any endpoint; nil means
	// acl.Default().
	Allow *acl.List
	// Policy decides which destinations the forward proxy may reach.
	// Required for proxying; nil refuses every proxy request.
	Policy *Policy
	// Verifier knows the tree's DIST entries; fetch-through only fetches
	// from a client-given origin for names it knows. nil: never.
	Verifier distcache.Verifier
	// LayoutConf is the body of /distfiles/layout.conf.
	LayoutConf []byte
	// Aliases are local directories served read-only under /NAME/.
	Aliases []config.Alias
	// Binpkgs serves the local PKGDIR below /binpkgs/ (paths relative to
	// it, the prefix is stripped); nil when none.
	Binpkgs http.Handler
	// BinhostUpstream is an upstream binhost URL whose files are cached
	// under /binpkgs/ when Binpkgs has no such file; "" when none.
	BinhostUpstream string
	// Stats reports the cache size for the status page; may be nil.
	// Status's cache source, when set, is used instead.
	Stats Stats
	// Health, when set, tells whether the node can serve (e.g. its object
	// storage answers); /healthz answers 503 with its error. nil: healthy.
	Health func(ctx context.Context) error
	// Status carries the other components' figures (downloads, tree,
	// rsync sessions) to the status page and /metrics; may be nil.
	Status *status.Board
	// AccessLog receives one line per request; nil discards.
	AccessLog io.Writer
	// Log receives everything else; nil discards.
	Log *slog.Logger

	// ReadHeaderTimeout bounds reading a request's headers (slowloris);
	// 0: DefaultReadHeaderTimeout. Applied by HTTPServer.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes kept-alive connections without a request;
	// 0: DefaultIdleTimeout. Applied by HTTPServer.
	IdleTimeout time.Duration
	// WriteIdleTimeout bounds how long a client may take to accept each
	// piece of an answer; 0: DefaultWriteIdleTimeout.
	WriteIdleTimeout time.Duration
	// MaxConnsPerClient bounds the connections one client address may
	// hold at once (0: no limit). Applied by Listener.
	MaxConnsPerClient int
}

// Server is lanmirror's HTTP handler.
type Server struct {
	opt     Options
	allow   atomic.Pointer[acl.List] // SetAllow swaps it (SIGHUP)
	log     *slog.Logger
	aliases map[string]*aliasDir
	start   time.Time
	alog    logBuffer
	recent  recentRing
	hits    hitStats
	metrics http.Handler // /metrics: the shared registry and the tree age
	reqs    requestCounters
	date    atomic.Pointer[dateStamp] // the front's Date header
	front   atomic.Int64              // requests the front answered itself
}

// New builds a Server from opt. Alias directories are opened here (with
// os.OpenRoot), so a missing directory is reported at start.
func New(opt Options) (*Server, error) {
	if opt.Cache == nil {
		return nil, errors.New("httpd: no cache")
	}
	s := &Server{opt: opt, log: opt.Log, start: time.Now()}
	s.SetAllow(opt.Allow)
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.opt.AccessLog == nil {
		s.opt.AccessLog = io.Discard
	}
	s.alog.w = s.opt.AccessLog
	if s.opt.ReadHeaderTimeout <= 0 {
		s.opt.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if s.opt.IdleTimeout <= 0 {
		s.opt.IdleTimeout = DefaultIdleTimeout
	}
	if s.opt.WriteIdleTimeout <= 0 {
		s.opt.WriteIdleTimeout = DefaultWriteIdleTimeout
	}
	if s.opt.LayoutConf == nil {
		s.opt.LayoutConf = []byte(defaultLayoutConf)
	}
	s.opt.BinhostUpstream = strings.TrimRight(s.opt.BinhostUpstream, "/")
	own := prometheus.NewRegistry()
	own.MustRegister(newTreeAgeCollector(s.opt.Status))
	s.metrics = metrics.Handler(own)
	s.aliases = map[string]*aliasDir{}
	for _, a := range opt.Aliases {
		switch a.Name {
		case "distfiles", "fetch", "binpkgs", "metrics":
			return nil, fmt.Errorf("httpd: alias %q clashes with a built-in route", a.Name)
		}
		d, err := openAlias(a)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.aliases[a.Name] = d
	}
	return s, nil
}

// Close releases the alias directories.
func (s *Server) Close() error {
	for _, d := range s.aliases {
		d.root.Close()
	}
	s.alog.flush()
	return nil
}

// defaultLayoutConf is served when Options.LayoutConf is nil: lanmirror
// answers both the hashed and the flat paths.
const defaultLayoutConf = "[structure]\n0=filename-hash BLAKE2B 8\n1=flat\n"

// ServeHTTP routes one request: allow list first, then proxy requests
// (absolute form), then the local routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rw := newRecorder(w, r)
	s.alog.begin()
	rw.idle = s.opt.WriteIdleTimeout
	defer s.finish(rw, r)

	client, ok := acl.AddrOf(r.RemoteAddr)
	if !ok || !s.allow.Load().Contains(client) {
		rw.outcome = "DENY"
		s.log.Warn("client refused by the allow list", "client", r.RemoteAddr, "method", r.Method, "url", r.RequestURI)
		textError(rw, http.StatusForbidden, fmt.Sprintf("403 forbidden: client %s is not in the allow list of this server\n", r.RemoteAddr))
		return
	}
	if r.Method == http.MethodConnect {
		rw.outcome = "DENY"
		textError(rw, http.StatusMethodNotAllowed, "405 CONNECT is not supported: lanmirror is a caching proxy for http:// URLs only; fetch https URLs directly or through /fetch/\n")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		rw.Header().Set("Allow", "GET, HEAD")
		textError(rw, http.StatusMethodNotAllowed, fmt.Sprintf("405 method %s not allowed: this server is read-only (GET, HEAD)\n", r.Method))
		return
	}
	if isProxyRequest(r) {
		s.serveProxy(rw, r)
		return
	}
	s.serveLocal(rw, r)
}

// serveLocal routes an origin-form request to the local routes.
func (s *Server) serveLocal(rw http.ResponseWriter, r *http.Request) {
	segs, err := splitPath(r.URL.EscapedPath())
	if err != nil {
		textError(rw, http.StatusBadRequest, fmt.Sprintf("400 bad path: %v\n", err))
		return
	}
	if len(segs) == 0 {
		s.serveStatus(rw, r)
		return
	}
	if len(segs) == 1 && segs[0] == "healthz" {
		s.serveHealth(rw, r)
		return
	}
	switch segs[0] {
	case "distfiles":
		s.serveMirror(rw, r, segs[1:])
	case "fetch":
		s.serveFetch(rw, r, segs[1:])
	case "binpkgs":
		s.serveBinpkgs(rw, r, segs[1:])
	case "metrics":
		if len(segs) != 1 {
			notFound(rw, r)
			return
		}
		s.metrics.ServeHTTP(rw, r)
	default:
		if d, ok := s.aliases[segs[0]]; ok {
			d.serve(rw, r, segs[1:])
			return
		}
		notFound(rw, r)
	}
}

// notFound answers 404 with a text body naming the path.
func notFound(w http.ResponseWriter, r *http.Request) {
	textError(w, http.StatusNotFound, fmt.Sprintf("404 not found: %s\n", r.URL.Path))
}

// textError writes a short text/plain answer.
func textError(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Del("Content-Length")
	h.Del("Content-Range")
	h.Del("Last-Modified")
	h.Del("Accept-Ranges")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	io.WriteString(w, msg)
}

// cacheError maps an error of the cache engine to a status and a text body
// saying what failed (the wrapped error text). When the client went away
// nothing is written; the access log shows 499.
func cacheError(w http.ResponseWriter, r *http.Request, what string, err error) {
	// Errors that are none of the engine's upstream errors (the store
	// failing, the cache shutting down) are the server's own: 500.
	code := http.StatusInternalServerError
	switch {
	case r.Context().Err() != nil:
		// The client is gone; nobody reads the answer.
		code = 499
	case errors.Is(err, distcache.ErrBadName):
		code = http.StatusBadRequest
	case errors.Is(err, distcache.ErrIndexNotReady):
		code = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", strconv.Itoa(indexRetryAfter))
	case errors.Is(err, distcache.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, distcache.ErrCorrupt):
		code = http.StatusBadGateway
	case errors.Is(err, errRefused):
		code = http.StatusForbidden
	case errors.Is(err, distcache.ErrUpstream) && (errors.Is(err, context.DeadlineExceeded) || isTimeout(err)):
		code = http.StatusGatewayTimeout
	case errors.Is(err, distcache.ErrUpstream):
		code = http.StatusBadGateway
	}
	if code == 499 {
		if rw, ok := w.(*recorder); ok {
			rw.status = code
		}
		return
	}
	textError(w, code, fmt.Sprintf("%d %s: %s: %v\n", code, http.StatusText(code), what, err))
}

// indexRetryAfter is the Retry-After (seconds) of a 503 answered while the
// tree's DIST index is not ready.
const indexRetryAfter = 10

// isTimeout reports whether err is a network timeout.
func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// serveHealth answers the load balancer's health check: 200 "ok", or 503
// with the reason when Options.Health reports a problem.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if h := s.opt.Health; h != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		err := h(ctx)
		cancel()
		if err != nil {
			textError(w, http.StatusServiceUnavailable, "503 unhealthy: "+err.Error()+"\n")
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		io.WriteString(w, "ok\n")
	}
}

// SetAllow replaces the allow list (nil: acl.Default()); requests already
// admitted are not affected.
func (s *Server) SetAllow(l *acl.List) {
	if l == nil {
		l = acl.Default()
	}
	s.allow.Store(l)
}
