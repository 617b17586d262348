package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/lanmirror/lanmirror/internal/config"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// A component is one part of the daemon (the HTTP side, the rsync daemon...).
// serve first calls open on every enabled component, so that all ports are
// bound (possibly as root), then drops privileges, then runs them all.
type component struct {
	name    string
	enabled func(cfg *config.Serve) bool
	// open binds listeners and loads state; it returns the function that
	// serves until ctx is cancelled.
	open func(ctx context.Context, env *serveEnv) (run func(ctx context.Context) error, err error)
}

// serveEnv is what components share.
type serveEnv struct {
	cfg       *config.Serve
	log       *slog.Logger
	accessLog io.Writer
	dist      distStoreState // the shared distfiles Store, see distStore (serve_http.go)
}

var components []component

func addComponent(c component) { components = append(components, c) }

// serveFlags binds every serve setting to a flag.
func serveFlags(fs *pflag.FlagSet, cfg *config.Serve) (finish func() error) {
	d := config.Defaults()
	fs.StringVar(&cfg.DataDir, "data", d.DataDir, "directory where all state lives (distfiles cache below it)")
	fs.StringVar(&cfg.HTTPAddr, "http", d.HTTPAddr, "HTTP listen address (proxy, mirror, aliases); empty disables")
	fs.StringArrayVar(&cfg.Mirrors, "mirror", d.Mirrors, "upstream distfiles mirror URL, repeatable, tried in order")
	fs.StringArrayVar(&cfg.Allow, "allow", nil, "client allow rule: CIDR or 10.1.2.* wildcard, repeatable (default: loopback and private ranges)")
	aliases := fs.StringArray("alias", nil, "serve local DIR read-only under /NAME/ (DIR:NAME), repeatable")
	fs.StringArrayVar(&cfg.ProxyAllowHosts, "proxy-allow-host", nil, "extra host the forward proxy may reach, repeatable")
	fs.StringVar(&cfg.LogFile, "log", "", "access log file (default: standard error)")
	fs.StringVar(&cfg.RsyncAddr, "rsync", d.RsyncAddr, "rsync daemon listen address; empty disables")
	fs.StringVar(&cfg.RsyncdConf, "rsyncd-conf", "", "classic rsyncd.conf with the rsync modules")
	modules := fs.StringArray("rsync-module", nil, "rsync module NAME=PATH, repeatable")
	fs.StringVar(&cfg.Tree, "tree", "", "local ebuild repository: verifies distfiles, and is served as rsync module gentoo-portage when no module is configured")
	fs.StringVar(&cfg.TreeUpstream, "tree-upstream", "", "mirror the tree from this rsync URL into atomic snapshots below --data (e.g. rsync://rsync.gentoo.org/gentoo-portage/)")
	fs.DurationVar(&cfg.TreeInterval, "tree-interval", d.TreeInterval, "how often to sync the tree from --tree-upstream")
	fs.IntVar(&cfg.TreeKeep, "tree-keep", d.TreeKeep, "how many tree snapshots to keep")
	fs.StringVar(&cfg.Binpkgs, "binpkgs", "", "PKGDIR served under /binpkgs/")
	fs.StringVar(&cfg.BinhostUpstream, "binhost-upstream", "", "upstream binhost URL cached under /binpkgs/")
	maxCache := fs.String("max-cache", "", "distfiles cache size cap (e.g. 200G); empty: no cap")
	fs.DurationVar(&cfg.CleanInterval, "clean-interval", 0, "how often to clean the cache (e.g. 24h); 0 disables")
	fs.DurationVar(&cfg.CleanGrace, "clean-grace", d.CleanGrace, "periodic cleaning keeps distfiles the tree no longer references this long after their last use")
	return func() error {
		for _, a := range *aliases {
			al, err := config.ParseAlias(a)
			if err != nil {
				return err
			}
			cfg.Aliases = append(cfg.Aliases, al)
		}
		for _, m := range *modules {
			name, path, ok := strings.Cut(m, "=")
			if !ok || name == "" || path == "" {
				return fmt.Errorf("--rsync-module %q: want NAME=PATH", m)
			}
			cfg.RsyncModules = append(cfg.RsyncModules, config.Module{
				Name: name, Path: path, ReadOnly: true, UseChroot: true, List: true,
			})
		}
		if cfg.TreeUpstream != "" && cfg.Tree == "" {
			cfg.Tree = filepath.Join(cfg.TreeDir(), "current")
		}
		if cfg.Tree != "" && cfg.RsyncdConf == "" && len(cfg.RsyncModules) == 0 {
			cfg.RsyncModules = append(cfg.RsyncModules, config.Module{
				Name: config.DefaultModuleName, Path: cfg.Tree, Comment: "Gentoo ebuild repository",
				Exclude: config.TreeExcludes, ReadOnly: true, UseChroot: true, List: true,
			})
		}
		if *maxCache != "" {
			n, err := config.ParseSize(*maxCache)
			if err != nil {
				return fmt.Errorf("--max-cache: %w", err)
			}
			cfg.MaxCache = n
		}
		return nil
	}
}

func init() {
	addCommand(func() *cobra.Command {
		cfg := &config.Serve{}
		cmd := &cobra.Command{
			Use:   "serve",
			Short: "run the daemon: distfiles cache over HTTP and the rsync tree server",
			Args:  cobra.NoArgs,
		}
		finish := serveFlags(cmd.Flags(), cfg)
		cmd.RunE = func(cmd *cobra.Command, _ []string) error {
			if err := finish(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serve(ctx, cfg)
		}
		return cmd
	})
}

func serve(ctx context.Context, cfg *config.Serve) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	env := &serveEnv{cfg: cfg, log: log, accessLog: os.Stderr}
	if cfg.LogFile != "" {
		f, err := os.OpenFile(cfg.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return fmt.Errorf("open access log: %w", err)
		}
		defer f.Close()
		env.accessLog = f
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var runs []func(context.Context) error
	var names []string
	for _, c := range components {
		if !c.enabled(cfg) {
			continue
		}
		run, err := c.open(ctx, env)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		runs = append(runs, run)
		names = append(names, c.name)
	}
	if len(runs) == 0 {
		return errors.New("nothing to serve: enable --http or --rsync")
	}
	if err := dropPrivileges(env); err != nil {
		return err
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
	log.Info("lanmirror serving", "components", strings.Join(names, ","), "data", cfg.DataDir, "version", version)
	var first error
	for range runs {
		if err := <-errc; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	env.closeDistStore()
	return first
}
