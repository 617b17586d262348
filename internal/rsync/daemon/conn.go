package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/lanmirror/lanmirror/internal/acl"
	"github.com/lanmirror/lanmirror/internal/metrics"
	"github.com/lanmirror/lanmirror/internal/rsync/checksum"
	"github.com/lanmirror/lanmirror/internal/rsync/opts"
	"github.com/lanmirror/lanmirror/internal/rsync/sender"
	"github.com/lanmirror/lanmirror/internal/rsync/wire"
)

// bufConn reads through the handshake's buffered reader (it may hold
// bytes the client sent early) and writes and sets deadlines on the
// connection.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// greetingDigests are the digest names announced in our greeting: the
// strong checksums the sender implements.
func greetingDigests() []string { return checksum.Names() }

// serveConn runs the daemon protocol on one connection: ctx ends the
// handshake, sessCtx the session.
func (s *Server) serveConn(ctx, sessCtx context.Context, conn net.Conn) {
	start := time.Now()
	remote := conn.RemoteAddr().String()
	addr, hasAddr := acl.AddrOf(remote)
	host := remote
	if hasAddr {
		host = addr.String()
	}
	log := s.log.With("client", remote)
	defer conn.Close()

	_ = conn.SetDeadline(start.Add(s.cfg.HandshakeTimeout))
	stopHS := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	handshakeDone := false
	defer func() {
		if !handshakeDone {
			stopHS()
		}
	}()

	br := bufio.NewReaderSize(conn, 4096)
	w := bufio.NewWriter(conn)
	fail := func(msg string, err error, result, module string) {
		log.Warn("rsync connection refused", "reason", msg, "err", err)
		if result != "" && module != "" {
			metrics.RsyncSessions.WithLabelValues(module, result).Inc()
		}
		fmt.Fprintf(w, "@ERROR: %s\n", msg)
		_ = w.Flush()
		lingerClose(conn)
	}

	fmt.Fprintf(w, "%s%d.%d %s\n", greetingPrefix, ProtocolVersion, subprotocol, strings.Join(greetingDigests(), " "))
	if s.cfg.MOTD != "" {
		w.WriteString(s.cfg.MOTD)
		w.WriteString("\n")
	}
	if err := w.Flush(); err != nil {
		log.Debug("rsync client gone before greeting", "err", err)
		return
	}

	line, err := readLine(br, '\n', maxLine)
	if err != nil {
		if errors.Is(err, io.EOF) {
			log.Debug("rsync client closed without a greeting")
			return
		}
		fail("protocol startup error", fmt.Errorf("read greeting: %w", err), "", "")
		return
	}
	g, err := parseGreeting(line)
	if err != nil {
		msg := "protocol startup error"
		if strings.HasPrefix(err.Error(), "your client") {
			msg = err.Error()
		}
		fail(msg, err, "", "")
		return
	}
	proto := negotiate(g)
	if proto < MinProtocol {
		fail(fmt.Sprintf("protocol version mismatch -- client protocol %d, lanmirror needs %d to %d", g.Protocol, MinProtocol, ProtocolVersion),
			nil, "", "")
		return
	}
	log = log.With("protocol", proto)

	name, err := readLine(br, '\n', maxLine)
	if err != nil {
		if errors.Is(err, io.EOF) {
			log.Debug("rsync client closed before the module request")
			return
		}
		fail("protocol startup error", fmt.Errorf("read module request: %w", err), "", "")
		return
	}
	if rest, ok := strings.CutPrefix(name, earlyInputCmd); ok {
		// --early-input data is for pre-xfer exec scripts, which lanmirror
		// does not run: read and drop it, then the real module line.
		if err := skipEarlyInput(br, rest); err != nil {
			fail("invalid early_input length", err, "", "")
			return
		}
		if name, err = readLine(br, '\n', maxLine); err != nil {
			fail("protocol startup error", fmt.Errorf("read module request: %w", err), "", "")
			return
		}
	}
	if name == "" || name == "#list" {
		s.sendListing(w)
		log.Info("rsync module list sent")
		lingerClose(conn)
		return
	}
	if strings.HasPrefix(name, "#") {
		fail(fmt.Sprintf("Unknown command '%s'", clip(name)), nil, "", "")
		return
	}
	m := s.modules[name]
	if m == nil {
		fail(fmt.Sprintf("Unknown module '%s'", clip(name)), nil, "", "")
		return
	}
	log = log.With("module", name)
	if !m.permit(addr, hasAddr) {
		if !m.cfg.List {
			fail(fmt.Sprintf("Unknown module '%s'", name), errors.New("denied by hosts allow/deny"), "denied", name)
		} else {
			fail(fmt.Sprintf("access denied to %s from %s (%s)", name, host, host), nil, "denied", name)
		}
		return
	}
	if err := m.claim(); err != nil {
		fail(fmt.Sprintf("max connections (%d) reached -- try again later", m.cfg.MaxConnections), nil, "busy", name)
		return
	}
	// The slot is given back before a closing linger, so that a client
	// that keeps its end open does not hold it (unclaim runs once).
	unclaim := sync.OnceFunc(m.unclaim)
	defer unclaim()
	active := metrics.RsyncActive.WithLabelValues(name)
	active.Inc()
	defer active.Dec()
	s.stats.total.Add(1)
	s.stats.active.Add(1)
	defer s.stats.active.Add(-1)

	if t := m.cfg.Timeout; t > 0 && t < s.cfg.HandshakeTimeout {
		_ = conn.SetDeadline(start.Add(t))
	}
	tr, err := m.acquire()
	if err != nil {
		log.Error("rsync module path unavailable", "path", m.cfg.Path, "err", err)
		fail("module path unavailable -- try again later", nil, "error", name)
		return
	}
	defer m.release(tr)

	fmt.Fprintf(w, "@RSYNCD: OK\n")
	if err := w.Flush(); err != nil {
		log.Debug("rsync client gone", "err", err)
		return
	}
	args, err := readArgs(br, proto)
	if err != nil {
		log.Warn("rsync bad argument list", "err", err)
		metrics.RsyncSessions.WithLabelValues(name, "error").Inc()
		sessionError(conn, w, proto, fmt.Sprintf("rsync: %v", err))
		unclaim()
		lingerClose(conn)
		return
	}
	o, err := sender.ParseArgs(args)
	if err != nil {
		msg := fmt.Sprintf("rsync: %v (lanmirror)", err)
		if errors.Is(err, opts.ErrReadOnly) {
			msg = fmt.Sprintf("ERROR: module is read only: lanmirror does not accept uploads to %s", name)
		}
		log.Warn("rsync request refused", "err", err, "args", strings.Join(args, " "))
		metrics.RsyncSessions.WithLabelValues(name, "error").Inc()
		sessionError(conn, w, proto, msg)
		unclaim()
		lingerClose(conn)
		return
	}

	// The handshake is over: from here the session's own timeouts apply,
	// and the server's shutdown grace.
	handshakeDone = true
	stopHS()
	_ = conn.SetDeadline(time.Time{})
	log.Debug("rsync session start", "paths", strings.Join(o.Paths, " "), "args", strings.Join(args, " "))
	st, err := s.session(sessCtx, &bufConn{Conn: conn, r: br}, sender.Config{
		Protocol:   proto,
		Args:       args,
		Root:       tr.root,
		ModuleName: name,
		Excludes:   m.cfg.Exclude,
		Timeout:    m.cfg.Timeout,
		// The handshake timeout also bounds the client's share of the
		// session setup, up to the end of the file list.
		SetupTimeout: s.cfg.HandshakeTimeout,
		Logger:       s.log,
		ClientInfo:   remote,
		Lists:        tr.lists,
	})
	metrics.RsyncBytes.Add(float64(st.TotalWritten))
	s.stats.bytes.Add(st.TotalWritten)
	// sender.Run logs the one Info (or Warn) line that sums up the
	// session; this one only adds the daemon's view at Debug level.
	result := "ok"
	level := slog.LevelDebug
	if err != nil {
		result = "error"
	}
	metrics.RsyncSessions.WithLabelValues(name, result).Inc()
	log.Log(context.Background(), level, "rsync session end", "result", result, "err", err,
		"read", st.TotalRead, "written", st.TotalWritten, "size", st.TotalSize,
		"files", st.Files, "literal", st.Literal, "matched", st.Matched,
		"duration", time.Since(start).Round(time.Millisecond))
	if err != nil {
		unclaim()
		lingerClose(conn)
	}
}

// sendListing writes the module list as rsyncd does, then the end marker.
func (s *Server) sendListing(w *bufio.Writer) {
	for _, m := range s.order {
		if m.cfg.List {
			fmt.Fprintf(w, "%-15s\t%s\n", m.cfg.Name, m.cfg.Comment)
		}
	}
	w.WriteString("@RSYNCD: EXIT\n")
	_ = w.Flush()
}

// sessionError reports an error after "@RSYNCD: OK", where the client
// expects the protocol setup: as rsyncd does when option parsing fails, it
// sends the setup the client waits for (no compatibility flags, a zero
// seed) and then the message on the multiplexed stream, which the client
// prints before it exits.
func sessionError(conn net.Conn, w *bufio.Writer, protocol int, msg string) {
	_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if protocol >= 30 {
		_ = wire.WriteVarint(w, 0)
	}
	_ = wire.WriteInt32(w, 0)
	mw := wire.NewMuxWriter(w)
	_ = mw.WriteMsg(wire.MsgError, []byte(strings.TrimRight(msg, "\n")+"\n"))
	_ = mw.Flush()
	_ = w.Flush()
}

// lingerClose half-closes the connection and drains what the client still
// sends for a short, bounded time, so that our last message is not lost to
// a reset when the client had unread data in flight.
func lingerClose(conn net.Conn) {
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, _ = io.CopyN(io.Discard, conn, 1<<20)
}
