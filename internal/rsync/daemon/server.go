// Package daemon is lanmirror's rsync daemon: it accepts connections from
// stock rsync clients, speaks the daemon handshake (greeting, module
// request, module list, @ERROR replies, hosts allow/deny, max connections,
// motd), reads the client's arguments and hands each session to the
// sender, with one shared file list cache per module tree.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/lanmirror/lanmirror/internal/config"
	"github.com/lanmirror/lanmirror/internal/connlimit"
	"github.com/lanmirror/lanmirror/internal/rsync/sender"
)

// Default bounds.
const (
	// DefaultHandshakeTimeout bounds the handshake (greeting to the end of
	// the arguments) when the module sets no shorter timeout, as rsyncd's
	// DAEMON_HANDSHAKE_TIMEOUT does.
	DefaultHandshakeTimeout = 60 * time.Second
	// DefaultShutdownGrace is how long running sessions may continue
	// after shutdown starts.
	DefaultShutdownGrace = 5 * time.Second
	// DefaultMaxClients bounds the connections served at once, all
	// modules and handshakes included.
	DefaultMaxClients = 512
)

// SessionFunc runs one session after the daemon has read the arguments.
// sender.Run is the real one.
type SessionFunc func(ctx context.Context, conn ReadWriteDeadliner, cfg sender.Config) (sender.Stats, error)

// ReadWriteDeadliner is the connection a session runs on.
type ReadWriteDeadliner interface {
	Read(p []byte) (int, error)
	Write(p []byte) (int, error)
	SetDeadline(t time.Time) error
}

// Config describes a Server.
type Config struct {
	// Modules are the served modules, in listing order.
	Modules []config.Module
	// MOTD is the message of the day sent to every client after the
	// greeting (the contents of "motd file", sent verbatim and followed by
	// a newline, as rsyncd does); empty: none.
	MOTD string
	// Logger receives one line per connection and per session; nil:
	// slog.Default().
	Logger *slog.Logger
	// HandshakeTimeout bounds the handshake; 0: DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// ShutdownGrace is how long sessions may run on after the server's
	// context ends; 0: DefaultShutdownGrace.
	ShutdownGrace time.Duration
	// MaxClients bounds the connections served at once; more are told to
	// try again later. 0: DefaultMaxClients.
	MaxClients int
	// MaxConnsPerClient bounds the connections one client address may
	// hold at once (handshakes, module lists and sessions); more are told
	// so and closed. 0: no limit.
	MaxConnsPerClient int
	// Session runs a session; nil: sender.Run.
	Session SessionFunc
	// NoWarmup turns off the scan of every module's tree when Serve
	// starts (by default the first client finds the file list ready).
	NoWarmup bool
	// Sessions counts the sessions for the status page; nil: a counter
	// of this Server's own.
	Sessions *SessionStats
}

// Server is an rsync daemon serving a fixed set of modules.
type Server struct {
	cfg     Config
	log     *slog.Logger
	modules map[string]*module
	order   []*module
	session SessionFunc
	wg      sync.WaitGroup
	slots   chan struct{} // one per connection being served
	stats   *SessionStats
	perIP   *connlimit.PerClient
}

// New checks the modules and returns a Server for them. Module paths are
// resolved per connection, so a path may appear (or be switched to a new
// snapshot) after the server starts.
func New(cfg Config) (*Server, error) {
	s := &Server{cfg: cfg, log: cfg.Logger, modules: map[string]*module{}, session: cfg.Session, stats: cfg.Sessions}
	if s.stats == nil {
		s.stats = &SessionStats{}
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.cfg.HandshakeTimeout <= 0 {
		s.cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if s.cfg.ShutdownGrace <= 0 {
		s.cfg.ShutdownGrace = DefaultShutdownGrace
	}
	if s.cfg.MaxClients <= 0 {
		s.cfg.MaxClients = DefaultMaxClients
	}
	s.slots = make(chan struct{}, s.cfg.MaxClients)
	s.perIP = connlimit.New(s.cfg.MaxConnsPerClient)
	if s.session == nil {
		s.session = func(ctx context.Context, conn ReadWriteDeadliner, c sender.Config) (sender.Stats, error) {
			return sender.Run(ctx, conn, c)
		}
	}
	if len(cfg.Modules) == 0 {
		return nil, errors.New("rsync daemon: no modules")
	}
	for _, mc := range cfg.Modules {
		if mc.Name == "" || strings.ContainsAny(mc.Name, "/\n\x00") || strings.HasPrefix(mc.Name, "#") {
			return nil, fmt.Errorf("rsync daemon: invalid module name %q", mc.Name)
		}
		if _, dup := s.modules[mc.Name]; dup {
			return nil, fmt.Errorf("rsync daemon: module %q defined twice", mc.Name)
		}
		m, err := newModule(mc, s.log)
		if err != nil {
			return nil, fmt.Errorf("rsync daemon: %w", err)
		}
		s.modules[mc.Name] = m
		s.order = append(s.order, m)
	}
	return s, nil
}

// Serve accepts connections on ln until ctx ends, then stops accepting,
// gives running sessions ShutdownGrace to finish, and returns once every
// connection is closed. It closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	// Sessions get their own context so that they can outlive ctx by the
	// grace period.
	sessCtx, cancelSessions := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSessions()
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		time.AfterFunc(s.cfg.ShutdownGrace, cancelSessions)
	})
	defer stop()
	s.log.Info("rsync daemon listening", "addr", ln.Addr().String(), "modules", len(s.order))
	warmCtx, stopWarm := context.WithCancel(ctx)
	defer stopWarm()
	if !s.cfg.NoWarmup {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.warm(warmCtx)
		}()
	}
	var err error
	delay := 5 * time.Millisecond
	for {
		conn, aerr := ln.Accept()
		if aerr != nil {
			if ctx.Err() != nil || errors.Is(aerr, net.ErrClosed) {
				break
			}
			// Out of file descriptors and the like: back off, bounded.
			s.log.Warn("rsync accept failed", "err", aerr)
			select {
			case <-time.After(delay):
			case <-ctx.Done():
			}
			delay = min(2*delay, time.Second)
			continue
		}
		delay = 5 * time.Millisecond
		release, ok := s.perIP.Acquire(conn.RemoteAddr())
		if !ok {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.refuse(conn, fmt.Sprintf("max connections per client (%d) reached -- try again later", s.perIP.Max()),
					"rsync client refused: too many connections from its address", s.perIP.Max())
			}()
			continue
		}
		select {
		case s.slots <- struct{}{}:
		default:
			release()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.refuse(conn, fmt.Sprintf("max connections (%d) reached -- try again later", s.cfg.MaxClients),
					"rsync client refused: too many connections", s.cfg.MaxClients)
			}()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.slots }()
			defer release()
			s.serveConn(ctx, sessCtx, conn)
		}()
	}
	ln.Close()
	stopWarm()
	s.wg.Wait()
	for _, m := range s.order {
		m.close()
	}
	if ctx.Err() == nil {
		err = errors.New("rsync daemon: listener closed")
	}
	return err
}

// warm scans each module's tree in the background when the server
// starts, so that the first client's sync does not wait for the whole
// scan (later changes are picked up by the cache's freshness check as
// usual). Modules whose path does not exist yet, or that are disabled,
// are left for the first client.
func (s *Server) warm(ctx context.Context) {
	for _, m := range s.order {
		if ctx.Err() != nil {
			return
		}
		if m.cfg.MaxConnections < 0 {
			continue
		}
		t, err := m.acquire()
		if err != nil {
			m.log.Debug("rsync module not scanned at start", "err", err)
			continue
		}
		start := time.Now()
		err = t.lists.Warm(ctx)
		m.release(t)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			m.log.Warn("rsync module scan at start failed", "err", err)
		default:
			m.log.Info("rsync module file list ready", "duration", time.Since(start).Round(time.Millisecond))
		}
	}
}

// refuse answers a connection beyond a limit (MaxClients,
// MaxConnsPerClient) with the greeting and "@ERROR: msg", and closes it.
func (s *Server) refuse(conn net.Conn, msg, logMsg string, limit int) {
	defer conn.Close()
	s.log.Warn(logMsg, "client", conn.RemoteAddr().String(), "max", limit)
	_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(conn, "%s%d.%d %s\n@ERROR: %s\n",
		greetingPrefix, ProtocolVersion, subprotocol, strings.Join(greetingDigests(), " "), msg)
	lingerClose(conn)
}

// ServeConn serves one client connection and closes it. The handshake
// and the session both end when ctx does.
func (s *Server) ServeConn(ctx context.Context, conn net.Conn) {
	s.wg.Add(1)
	defer s.wg.Done()
	s.serveConn(ctx, ctx, conn)
}
