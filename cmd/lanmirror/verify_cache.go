package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/lanmirror/lanmirror/internal/distcache"
	"github.com/lanmirror/lanmirror/internal/gentoo"
	"github.com/spf13/cobra"
)

func newVerifyCacheCmd() *cobra.Command {
	var dryRun bool
	sf := newSettingsFlags()
	cmd := &cobra.Command{
		Use:   "verify-cache",
		Short: "re-hash the cached distfiles against the tree's Manifests and quarantine the ones that differ",
		Long: `verify-cache reads every cached distfile the tree (--tree, else DATA/tree/current)
has a DIST entry for, and checks its size, BLAKE2B and SHA512 against the Manifest.
A file that differs is moved to DATA/quarantine/<name>.<time>, with a <name>.<time>.why
note beside it, so that the next request fetches it again; files the tree does not
list are left alone. It is safe while serve runs on the same --data.

The exit status is 0 when every checked file matched, 1 when files were
quarantined (or would be, with --dry-run) or could not be checked.
serve --verify-cache does the same in the background.`,
		Example: `  lanmirror verify-cache --data /var/cache/lanmirror --tree /var/db/repos/gentoo
  lanmirror verify-cache --data /var/cache/lanmirror --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := sf.settings()
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			tp := cfg.LocalTree()
			if tp == "" {
				return errors.New("verify-cache: no tree to verify against: give --tree (or mirror one with serve --tree-upstream)")
			}
			idx, err := gentoo.LoadDistIndex(cmd.Context(), tp, log)
			if err != nil {
				return fmt.Errorf("verify-cache: %w", err)
			}
			if idx.Len() == 0 {
				return fmt.Errorf("verify-cache: tree %s has no DIST entries", idx.Root())
			}
			if _, err := os.Stat(cfg.DataDir); err != nil {
				return fmt.Errorf("verify-cache: no cache here: %w", err)
			}
			st, err := distcache.OpenStore(cfg.DataDir, log)
			if err != nil {
				return fmt.Errorf("verify-cache: %w", err)
			}
			defer st.Close()
			r, err := st.VerifyDistfiles(cmd.Context(), distcache.VerifyOptions{Verifier: idx, DryRun: dryRun})
			reportVerify(cmd.OutOrStdout(), r, dryRun)
			if err != nil {
				return err
			}
			if r.Quarantined > 0 || r.Errors > 0 {
				return fmt.Errorf("verify-cache: %d cached distfiles did not match the Manifests, %d could not be checked", r.Quarantined, r.Errors)
			}
			return nil
		},
	}
	sf.on(cmd.Flags())
	sf.storeFlags()
	sf.treeFlags()
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "list the files that do not match, move nothing")
	return cmd
}

// reportVerify writes one line per problem and a summary.
func reportVerify(w io.Writer, r distcache.VerifyReport, dryRun bool) {
	for _, p := range r.Bad {
		switch {
		case p.Moved != "":
			fmt.Fprintf(w, "quarantined %s: %s (now %s)\n", p.Name, p.Why, p.Moved)
		case dryRun:
			fmt.Fprintf(w, "would quarantine %s: %s\n", p.Name, p.Why)
		default:
			fmt.Fprintf(w, "error %s: %s\n", p.Name, p.Why)
		}
	}
	verb := "quarantined"
	if dryRun {
		verb = "to quarantine"
	}
	fmt.Fprintf(w, "%d checked (%d MiB), %d good, %d %s, %d errors, %d not in the tree\n",
		r.Checked, r.Bytes>>20, r.OK, r.Quarantined, verb, r.Errors, r.Unknown)
}

// verifyCacheRetry is how often the daemon's verify-cache pass looks
// again for a tree index that could not be built.
const verifyCacheRetry = 10 * time.Second

// openVerifyCache returns serve's --verify-cache pass: once the tree's
// DIST index is built, in the background, then every
// VerifyCacheInterval (when set).
func (s *server) openVerifyCache(_ context.Context) (func(context.Context) error, error) {
	if s.index == nil {
		return nil, errors.New("--verify-cache needs a tree to verify against (--tree or --tree-upstream)")
	}
	if s.cfg.RemoteStore() {
		return nil, errors.New("--verify-cache checks the cache below --data; it does not support --store s3:// yet")
	}
	store, err := s.distStore()
	if err != nil {
		return nil, err
	}
	ti := s.index
	return func(ctx context.Context) error {
		for {
			for ti.WaitIndexed(ctx) != nil {
				if ctx.Err() != nil {
					return nil
				}
				sleepOrDone(ctx, verifyCacheRetry)
			}
			start := time.Now()
			r, err := store.VerifyDistfiles(ctx, distcache.VerifyOptions{Verifier: ti.Current()})
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				s.log.Error("verify-cache pass failed", "err", err)
			} else {
				s.log.Info("verify-cache pass done", "checked", r.Checked, "good", r.OK, "quarantined", r.Quarantined,
					"errors", r.Errors, "not_in_tree", r.Unknown, "bytes", r.Bytes, "took", time.Since(start).Round(time.Millisecond))
			}
			if s.cfg.VerifyCacheInterval <= 0 {
				return nil
			}
			if !sleepOrDone(ctx, s.cfg.VerifyCacheInterval) {
				return nil
			}
		}
	}, nil
}

// sleepOrDone waits d; false when ctx ended first.
func sleepOrDone(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
