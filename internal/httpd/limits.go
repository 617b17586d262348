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

// Listener wraps ln with the per-client connection limit of Options
// (MaxConnsPerClient): a connection from an address that already holds
// that many is answered 503 and closed, without reaching the handler; it
// counts until closed (kept-alive connections included). Without a limit
// ln is returned as is.
func (s *Server) Listener(ln net.Listener) net.Listener {
	if s.opt.MaxConnsPerClient <= 0 {
		return ln
	}
	return &limitListener{Listener: ln, lim: connlimit.New(s.opt.MaxConnsPerClient), s: s}
}

// limitListener refuses connections beyond the per-client limit.
type limitListener struct {
	net.Listener
	lim *connlimit.PerClient
	s   *Server
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		release, ok := l.lim.Acquire(c.RemoteAddr())
		if ok {
			return &limitedConn{Conn: c, release: release}, nil
		}
		go l.refuse(c)
	}
}

// refuse answers 503 on a connection over the limit and closes it,
// bounded in time.
func (l *limitListener) refuse(c net.Conn) {
	defer c.Close()
	l.s.log.Warn("http client refused: too many connections from its address",
		"client", c.RemoteAddr().String(), "max", l.lim.Max())
	msg := fmt.Sprintf("503 service unavailable: max connections per client (%d) reached -- try again later\n", l.lim.Max())
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

// limitedConn gives its slot back when closed.
type limitedConn struct {
	net.Conn
	release func()
}

func (c *limitedConn) Close() error {
	c.release()
	return c.Conn.Close()
}
