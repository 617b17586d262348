package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"

	"github.com/lanmirror/lanmirror/internal/config"
	"github.com/lanmirror/lanmirror/internal/rsync/daemon"
)

// maxMOTD bounds the message of the day read from "motd file".
const maxMOTD = 64 << 10

// rsyncEnabled: the daemon runs when it has an address and modules come
// from an rsyncd.conf, --rsync-module or --tree.
func rsyncEnabled(cfg *config.Serve) bool {
	return cfg.RsyncAddr != "" && (cfg.RsyncdConf != "" || len(cfg.RsyncModules) > 0)
}

// rsyncSetup is the rsync daemon's effective configuration: the
// rsyncd.conf (if any) merged with the command line.
type rsyncSetup struct {
	conf    *config.Rsyncd // nil without --rsyncd-conf
	modules []config.Module
	addr    string // listen address
	motd    string // message of the day, read from "motd file"
	pidFile string
	// perClient is --max-conns-per-client, else the conf's "max
	// connections per client".
	perClient int
	warnings  []string
}

// loadRsyncSetup loads --rsyncd-conf and merges it with the flags: modules
// from --rsync-module (or --tree) replace conf modules of the same name,
// and an explicit --rsync address wins over the conf's "address"/"port"
// (which apply while --rsync keeps its default).
func loadRsyncSetup(cfg *config.Serve) (*rsyncSetup, error) {
	s := &rsyncSetup{addr: cfg.RsyncAddr, perClient: cfg.MaxConnsPerClient}
	if cfg.RsyncdConf != "" {
		c, err := config.LoadRsyncd(cfg.RsyncdConf)
		if err != nil {
			return nil, err
		}
		s.conf = c
		s.warnings = append(s.warnings, c.Warnings...)
		s.pidFile = c.PIDFile
		if s.perClient == 0 {
			s.perClient = c.MaxConnsPerClient
		}
		if cfg.RsyncAddr == config.DefaultRsyncAddr && (c.Address != "" || c.Port != 0) {
			host, port, err := net.SplitHostPort(cfg.RsyncAddr)
			if err != nil {
				return nil, fmt.Errorf("--rsync %q: %w", cfg.RsyncAddr, err)
			}
			if c.Address != "" {
				host = c.Address
			}
			if c.Port != 0 {
				port = strconv.Itoa(c.Port)
			}
			s.addr = net.JoinHostPort(host, port)
		}
		if c.MOTDFile != "" {
			motd, err := readMOTD(c.MOTDFile)
			if err != nil {
				s.warnings = append(s.warnings, fmt.Sprintf("%s: motd file: %v (no motd sent)", c.File, err))
			}
			s.motd = motd
		}
		s.modules = append(s.modules, c.Modules...)
	}
	for _, m := range cfg.RsyncModules {
		replaced := false
		for i := range s.modules {
			if s.modules[i].Name == m.Name {
				s.modules[i] = m
				replaced = true
				s.warnings = append(s.warnings, fmt.Sprintf("module %s from the config file or the command line replaces the one in %s", m.Name, cfg.RsyncdConf))
			}
		}
		if !replaced {
			s.modules = append(s.modules, m)
		}
	}
	if len(s.modules) == 0 {
		return nil, errors.New("no rsync modules: give --rsyncd-conf with [module] sections, --rsync-module NAME=PATH or --tree")
	}
	for _, m := range s.modules {
		if fi, err := os.Stat(m.Path); err != nil {
			s.warnings = append(s.warnings, fmt.Sprintf("module %s: path %s: %v (served once it exists)", m.Name, m.Path, err))
		} else if !fi.IsDir() {
			return nil, fmt.Errorf("module %s: path %s is not a directory", m.Name, m.Path)
		}
	}
	return s, nil
}

// readMOTD reads a message-of-the-day file, bounded.
func readMOTD(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMOTD+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxMOTD {
		return "", fmt.Errorf("larger than %d bytes", maxMOTD)
	}
	return string(b), nil
}

// listenRsync loads the rsync daemon's settings, binds its listener and
// writes the pid file (before privileges are dropped).
func (sv *server) listenRsync() error {
	s, err := loadRsyncSetup(sv.cfg)
	if err != nil {
		return err
	}
	for _, w := range s.warnings {
		sv.log.Warn("rsyncd.conf", "warning", w)
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.addr, err)
	}
	if s.pidFile != "" {
		if err := os.WriteFile(s.pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			ln.Close()
			return fmt.Errorf("pid file: %w", err)
		}
	}
	sv.rsync, sv.rsyncLn = s, ln
	return nil
}

// openRsync starts the rsync daemon on the listener of listenRsync (bound
// now if it was not); the returned function serves until ctx ends.
func (sv *server) openRsync(_ context.Context) (func(context.Context) error, error) {
	if sv.rsyncLn == nil {
		if err := sv.listenRsync(); err != nil {
			return nil, err
		}
	}
	s, ln := sv.rsync, sv.rsyncLn
	srv, err := sv.newRsyncDaemon(s)
	if err != nil {
		return nil, err
	}
	sv.status.SetRsync(sv.rsyncSessions.Snapshot)
	mux := newRsyncMux(ln, srv, func(*daemon.Server) {})
	sv.rsyncMux = mux
	return func(ctx context.Context) error {
		defer func() {
			if s.pidFile != "" {
				if err := os.Remove(s.pidFile); err != nil {
					sv.log.Warn("remove pid file", "err", err)
				}
			}
		}()
		return mux.run(ctx)
	}, nil
}

// newRsyncDaemon builds the rsync daemon for setup.
func (sv *server) newRsyncDaemon(s *rsyncSetup) (*daemon.Server, error) {
	return daemon.New(daemon.Config{Modules: s.modules, MOTD: s.motd, Logger: sv.log, ShutdownGrace: sv.drainTimeout(), Sessions: sv.rsyncSessions,
		HandshakeTimeout: sv.cfg.RsyncHandshakeTimeout, MaxConnsPerClient: s.perClient})
}
