package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/lanmirror/lanmirror/internal/config"
	"github.com/lanmirror/lanmirror/internal/distcache"
	"github.com/lanmirror/lanmirror/internal/gentoo"
	"github.com/lanmirror/lanmirror/internal/httpd"
	"github.com/lanmirror/lanmirror/internal/rsync/daemon"
	"github.com/lanmirror/lanmirror/internal/status"
	"github.com/lanmirror/lanmirror/internal/tree"
	"github.com/spf13/cobra"
)

// server is one running `lanmirror serve`, built top-down from its
// settings by newServer: it owns what its parts share (the distfiles
// store, the tree's DIST index, the logs). parts lists the enabled parts;
// serve binds every listener (possibly as root, listen), drops privileges,
// then opens and runs the parts.
type server struct {
	cfg       *config.Serve
	log       *slog.Logger
	accessLog io.Writer

	// index is the DIST index of cfg.Tree that verifies downloads and
	// tells the cleaner what the tree references; nil without a tree (or
	// when nothing uses it).
	index *gentoo.TreeIndex

	// status carries the parts' figures to the HTTP status page and
	// /metrics: each part registers its source when it opens.
	status *status.Board
	// rsyncSessions counts the sessions of every rsync daemon generation
	// (a reload replaces the daemon), for the status page.
	rsyncSessions *daemon.SessionStats

	storeOnce sync.Once
	store     *distcache.Store
	storeErr  error

	// Bound by listen before privileges are dropped (nil: the part binds
	// its own when it opens).
	httpLn  net.Listener
	rsyncLn net.Listener
	rsync   *rsyncSetup // the rsync daemon's settings, loaded by listen

	// What a reload (SIGHUP) changes, set by the parts as they open.
	access   *reopenFile // the access log file; nil for standard error
	httpSrv  *httpd.Server
	cache    *distcache.Cache
	policy   *httpd.Policy
	rsyncMux *rsyncMux
}

// part is one part of the daemon (the HTTP side, the rsync daemon...).
type part struct {
	name string
	// open binds listeners and loads state; it returns the function that
	// serves until ctx is cancelled.
	open func(ctx context.Context) (run func(ctx context.Context) error, err error)
}

// newServer wires a server for cfg; it does no I/O.
func newServer(cfg *config.Serve, log *slog.Logger, accessLog io.Writer) *server {
	s := &server{cfg: cfg, log: log, accessLog: accessLog, status: &status.Board{}, rsyncSessions: &daemon.SessionStats{}}
	if cfg.Tree != "" {
		tr := cfg.Tree
		s.status.SetTree(func() (status.Tree, bool) { return tree.Describe(tr) })
	}
	if cfg.Tree != "" && (cfg.HTTPAddr != "" || cleanEnabled(cfg) || cfg.VerifyCache) {
		s.index = gentoo.NewTreeIndex(cfg.Tree, gentoo.TreeIndexOptions{Log: log})
	}
	return s
}

// parts returns the enabled parts, in the order they are opened.
func (s *server) parts() []part {
	var ps []part
	if s.cfg.HTTPAddr != "" {
		ps = append(ps, part{"http", s.openHTTP})
	}
	if rsyncEnabled(s.cfg) {
		ps = append(ps, part{"rsync", s.openRsync})
	}
	if len(s.cfg.TreeUpstream) > 0 {
		ps = append(ps, part{"tree", s.openTreeSync})
	}
	if s.index != nil {
		ps = append(ps, part{"distindex", s.openDistIndex})
	}
	if cleanEnabled(s.cfg) {
		ps = append(ps, part{"clean", s.openClean})
	}
	if s.cfg.VerifyCache {
		ps = append(ps, part{"verifycache", s.openVerifyCache})
	}
	return ps
}

// verifier is the DIST verifier of the distfiles cache: the tree index, or
// nil (an untyped nil, not a nil *TreeIndex) without a tree; downloads are
// then checked by size only.
func (s *server) verifier() distcache.Verifier {
	if s.index == nil {
		return nil
	}
	return s.index
}

// distStore opens the distfiles Store below --data once and shares it
// between the parts (the HTTP side, the cleaner); serve closes it once
// every part has stopped (closeDistStore).
func (s *server) distStore() (*distcache.Store, error) {
	s.storeOnce.Do(func() {
		s.store, s.storeErr = distcache.OpenStore(s.cfg.DataDir, s.log)
		if s.storeErr != nil {
			s.storeErr = fmt.Errorf("open distfiles store in %s: %w", s.cfg.DataDir, s.storeErr)
		}
	})
	return s.store, s.storeErr
}

// closeDistStore closes the shared Store if a part opened it: the
// served-time index is written out.
func (s *server) closeDistStore() {
	if s.store == nil {
		return
	}
	if err := s.store.Close(); err != nil {
		s.log.Warn("closing the distfiles store", "err", err)
	}
}

func newServeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "run the daemon: distfiles cache over HTTP and the rsync tree server",
		Args:  cobra.NoArgs,
	}
	sf := newSettingsFlags().on(cmd.Flags())
	sf.allServeFlags()
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := sf.settings()
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return serve(ctx, cfg, sf.settings)
	}
	return cmd
}

// serve runs the daemon with cfg until ctx ends; on SIGHUP, reload gives
// the settings to apply (see server.reload).
func serve(ctx context.Context, cfg *config.Serve, reload func() (*config.Serve, error)) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	var accessLog io.Writer = os.Stderr
	var access *reopenFile
	var logFile *os.File
	if cfg.LogFile != "" {
		f, err := openReopenFile(cfg.LogFile)
		if err != nil {
			return fmt.Errorf("open access log: %w", err)
		}
		defer f.Close()
		accessLog, access, logFile = f, f, f.f
	}
	s := newServer(cfg, log, accessLog)
	s.access = access
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Every port first (873, 80 need root), then the user, then the rest.
	if err := s.listen(); err != nil {
		s.closeListeners()
		return err
	}
	if err := s.dropPrivileges(logFile); err != nil {
		s.closeListeners()
		return err
	}
	var runs []func(context.Context) error
	var names []string
	for _, p := range s.parts() {
		run, err := p.open(ctx)
		if err != nil {
			s.closeListeners()
			return fmt.Errorf("%s: %w", p.name, err)
		}
		runs = append(runs, run)
		names = append(names, p.name)
	}
	if len(runs) == 0 {
		return errors.New("nothing to serve: enable --http or --rsync")
	}
	errc := make(chan error, len(runs))
	for i, run := range runs {
		go func() {
			err := run(ctx)
			if err != nil {
				err = fmt.Errorf("%s: %w", names[i], err)
			}
			errc <- err
		}()
	}
	log.Info("lanmirror serving", "components", strings.Join(names, ","), "data", cfg.DataDir, "version", version,
		"uid", os.Getuid())
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				log.Info("SIGHUP: reloading the configuration")
				s.reload(reload)
			}
		}
	}()
	stopping := context.AfterFunc(ctx, func() {
		log.Info("stopping: no new connections; transfers in progress may finish", "drain_timeout", s.drainTimeout())
	})
	defer stopping()
	var first error
	for range runs {
		if err := <-errc; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	s.closeDistStore()
	return first
}
