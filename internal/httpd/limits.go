package httpd

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/lanmirror/lanmirror/internal/connlimit"
)

// Default bounds on slow and hostile clients (Options).
const (
	// DefaultReadHeaderTimeout bounds the reading of a request's headers:
	// a client trickling them (slowloris) is disconnected after it.
	DefaultReadHeaderTimeout = 20 * time.Second
	// DefaultIdleTimeout closes a kept-alive connection with no request.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultWriteIdleTimeout bounds how long a client may take to accept
	// one piece of an answer: one that stops reading is disconnected
	// after it (a download it joined goes on for the others).
	DefaultWriteIdleTimeout = 2 * time.Minute
)

// refuseTimeout bounds the answer to a connection refused by the
// per-client limit.
const refuseTimeout = 2 * time.Second

// HTTPServer returns the net/http server for s with the timeouts of its
// Options (headers, idle keep-alive); errLog receives net/http's own
// errors (nil: discarded). Serve it on Listener(ln).
func (s *Server) HTTPServer(errLog *log.Logger) *http.Server {
	if errLog == nil {
		errLog = log.New(io.Discard, "", 0)
	}
	return &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.opt.ReadHeaderTimeout,
		IdleTimeout:       s.opt.IdleTimeout,
		ErrorLog:          errLog,
	}
}

// Listener wraps ln for HTTPServer: connections start in the front (see
// front.go), which answers plain cache hits itself and hands every other
// request to net/http; and the per-client connection limit of Options
// (MaxConnsPerClient) applies: a connection from an address that already
// holds that many is answered 503 and closed, without reaching either; it
// counts until closed (kept-alive connections included).
func (s *Server) Listener(ln net.Listener) net.Listener {
	var lim *connlimit.PerClient
	if s.opt.MaxConnsPerClient > 0 {
		lim = connlimit.New(s.opt.MaxConnsPerClient)
	}
	return newFrontListener(s, ln, lim)
}

// refuseOverLimit answers 503 on a connection over the per-client limit
// and closes it, bounded in time.
func (s *Server) refuseOverLimit(c net.Conn, max int) {
	defer c.Close()
	s.log.Warn("http client refused: too many connections from its address",
		"client", c.RemoteAddr().String(), "max", max)
	msg := fmt.Sprintf("503 service unavailable: max connections per client (%d) reached -- try again later\n", max)
	_ = c.SetDeadline(time.Now().Add(refuseTimeout))
	fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"+
		"Content-Length: %d\r\nRetry-After: 5\r\nConnection: close\r\n\r\n%s", len(msg), msg)
	// Drain what the client sent, so that closing does not reset the
	// connection before it reads the answer.
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_, _ = io.CopyN(io.Discard, c, 64<<10)
}
