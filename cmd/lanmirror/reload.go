package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/lanmirror/lanmirror/internal/acl"
	"github.com/lanmirror/lanmirror/internal/config"
	"github.com/lanmirror/lanmirror/internal/rsync/daemon"
)

// SIGHUP reloads the settings into the running daemon: the HTTP allow
// list, the mirrors (and the forward proxy's allowed hosts), the rsync
// modules (a new daemon takes the new connections while sessions of the
// old one run to their end), and reopens the access log. Listen
// addresses, the data directory, the user and the like need a restart;
// a change to them is logged and ignored.

// reload applies the settings cfg of a reload. A bad configuration (an
// error from load) leaves everything as it was.
func (s *server) reload(load func() (*config.Serve, error)) {
	if s.access != nil {
		if err := s.access.Reopen(); err != nil {
			s.log.Error("reload: reopening the access log", "err", err)
		}
	}
	cfg, err := load()
	if err != nil {
		s.log.Error("reload: configuration not loaded, keeping the running one", "err", err)
		return
	}
	old := s.cfg
	for _, c := range []struct {
		name    string
		changed bool
	}{
		{"http", cfg.HTTPAddr != old.HTTPAddr},
		{"rsync", cfg.RsyncAddr != old.RsyncAddr},
		{"data", cfg.DataDir != old.DataDir},
		{"user", cfg.User != old.User},
		{"tree", cfg.Tree != old.Tree},
		{"store", cfg.Store != old.Store},
	} {
		if c.changed {
			s.log.Warn("reload: this setting changes only with a restart", "setting", c.name)
		}
	}
	if s.httpSrv != nil {
		if err := s.reloadHTTP(cfg); err != nil {
			s.log.Error("reload: HTTP settings kept", "err", err)
		}
	}
	if s.rsyncMux != nil {
		if err := s.reloadRsync(cfg); err != nil {
			s.log.Error("reload: rsync modules kept", "err", err)
		}
	} else if rsyncEnabled(cfg) && old.RsyncAddr != "" {
		s.log.Warn("reload: the rsync daemon starts only with a restart")
	}
	s.log.Info("configuration reloaded", "allow", cfg.Allow, "mirrors", cfg.Mirrors)
}

// reloadHTTP swaps the allow list, the mirrors and the proxy policy.
func (s *server) reloadHTTP(cfg *config.Serve) error {
	allow := acl.Default()
	if len(cfg.Allow) > 0 {
		var err error
		if allow, err = acl.Parse(cfg.Allow...); err != nil {
			return fmt.Errorf("allow: %w", err)
		}
	}
	if err := s.policy.Update(append(append(append([]string(nil), cfg.Mirrors...), cfg.BinhostUpstream, cfg.UpstreamProxy), cfg.Peers...), cfg.ProxyAllowHosts); err != nil {
		return err
	}
	if err := s.cache.SetMirrors(cfg.Mirrors); err != nil {
		return err
	}
	s.httpSrv.SetAllow(allow)
	return nil
}

// reloadRsync starts a daemon with the new modules for new connections.
func (s *server) reloadRsync(cfg *config.Serve) error {
	setup, err := loadRsyncSetup(cfg)
	if err != nil {
		return err
	}
	for _, w := range setup.warnings {
		s.log.Warn("rsyncd.conf", "warning", w)
	}
	if setup.addr != s.rsync.addr {
		s.log.Warn("reload: the rsync address changes only with a restart", "running", s.rsync.addr)
	}
	srv, err := s.newRsyncDaemon(setup)
	if err != nil {
		return err
	}
	s.rsyncMux.swap(srv)
	return nil
}

// reopenFile is the access log: a file that SIGHUP reopens (after
// logrotate moved it).
type reopenFile struct {
	mu   sync.Mutex
	path string
	f    *os.File
}

func openReopenFile(path string) (*reopenFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, err
	}
	return &reopenFile{path: path, f: f}, nil
}

func (r *reopenFile) Write(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.f.Write(b)
}

// Reopen opens the path again (a new file if it was moved away); on error
// the old file stays in use.
func (r *reopenFile) Reopen() error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	r.mu.Lock()
	old := r.f
	r.f = f
	r.mu.Unlock()
	return old.Close()
}

func (r *reopenFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.f.Close()
}

// rsyncMux accepts the rsync connections and hands each to the current
// daemon; a reload swaps in a new daemon, and the old one serves its
// running sessions to their end.
type rsyncMux struct {
	ln    net.Listener
	onNew func(*daemon.Server) // the status page follows the current daemon

	mu   sync.Mutex
	cur  *rsyncGen
	ctx  context.Context // set by run
	wg   sync.WaitGroup
	errc chan error // errors of generations' Serve
}

type rsyncGen struct {
	srv *daemon.Server
	ln  *chanListener
}

func newRsyncMux(ln net.Listener, srv *daemon.Server, onNew func(*daemon.Server)) *rsyncMux {
	m := &rsyncMux{ln: ln, onNew: onNew, errc: make(chan error, 64)}
	m.cur = &rsyncGen{srv: srv, ln: newChanListener(ln.Addr())}
	onNew(srv)
	return m
}

// start runs g's daemon; mu is held.
func (m *rsyncMux) start(g *rsyncGen) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := g.srv.Serve(m.ctx, g.ln); err != nil && m.ctx.Err() == nil && g != m.current() {
			return // a retired daemon: its listener was closed by swap
		} else if err != nil {
			select {
			case m.errc <- err:
			default:
			}
		}
	}()
}

func (m *rsyncMux) current() *rsyncGen {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cur
}

// swap makes srv the daemon of new connections and retires the old one.
func (m *rsyncMux) swap(srv *daemon.Server) {
	g := &rsyncGen{srv: srv, ln: newChanListener(m.ln.Addr())}
	m.mu.Lock()
	old := m.cur
	m.cur = g
	if m.ctx != nil {
		m.start(g)
	}
	m.mu.Unlock()
	m.onNew(srv)
	old.ln.Close()
}

// run accepts until ctx ends, then waits for every daemon to finish
// (each drains its sessions).
func (m *rsyncMux) run(ctx context.Context) error {
	m.mu.Lock()
	m.ctx = ctx
	m.start(m.cur)
	m.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { m.ln.Close() })
	defer stop()
	var err error
	delay := 5 * time.Millisecond
	for {
		conn, aerr := m.ln.Accept()
		if aerr != nil {
			if ctx.Err() != nil {
				break
			}
			if errors.Is(aerr, net.ErrClosed) {
				err = errors.New("rsync listener closed")
				break
			}
			time.Sleep(delay) // out of descriptors and the like
			delay = min(2*delay, time.Second)
			continue
		}
		delay = 5 * time.Millisecond
		m.mu.Lock()
		m.cur.ln.deliver(conn)
		m.mu.Unlock()
	}
	if err != nil {
		m.current().ln.Close()
	}
	m.wg.Wait()
	select {
	case e := <-m.errc:
		if err == nil {
			err = e
		}
	default:
	}
	return err
}

// chanListener is a net.Listener fed by rsyncMux.
type chanListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// deliver hands conn to Accept, or closes it when the listener is closed.
func (l *chanListener) deliver(conn net.Conn) {
	select {
	case l.conns <- conn:
	case <-l.done:
		conn.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
