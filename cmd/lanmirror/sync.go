package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/lanmirror/lanmirror/internal/progress"
	"github.com/lanmirror/lanmirror/internal/tree"
	"github.com/spf13/cobra"
)

func newSyncCmd() *cobra.Command {
	sf := newSettingsFlags()
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "pull the ebuild tree from an upstream rsync mirror into a new atomic snapshot",
		Long: `sync mirrors the tree from --upstream into a new snapshot below DATA/tree and
publishes it atomically (DATA/tree/current). Nothing is copied when the upstream
metadata/timestamp.chk is unchanged; a pulled tree older than the local one is
refused. With several --upstream, each is tried in order until one gives a good
tree. On a terminal a progress bar shows the files and bytes pulled.
With --tree-openpgp-key the pulled tree is verified against its signed Manifests
(GLEP 74, as Portage's gemato does) before it is published: a tree that fails is
discarded, the published one stays, and the files that failed are named.
The daemon does the same on a schedule with serve --tree-upstream.`,
		Example: "  lanmirror sync --data /var/cache/lanmirror --upstream rsync://rsync.gentoo.org/gentoo-portage/",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := sf.settings()
			if err != nil {
				return err
			}
			if len(cfg.TreeUpstream) == 0 {
				return fmt.Errorf("--upstream is required")
			}
			st, err := tree.Open(cfg.TreeDir())
			if err != nil {
				return err
			}
			errw := cmd.ErrOrStderr()
			log := slog.New(slog.NewTextHandler(errw, nil))
			verify, err := treeVerifyHook(cfg, st, log)
			if err != nil {
				return err
			}
			bar := progress.NewTransfer(errw, "pulling the tree")
			sy := &tree.Syncer{Store: st, Upstreams: cfg.TreeUpstream, Keep: cfg.TreeKeep, Verify: verify,
				Log:      log,
				Progress: func(p tree.Progress) { bar.Set(p.Files, p.Bytes) }}
			res, err := sy.Sync(cmd.Context())
			bar.Finish()
			if err != nil {
				return err
			}
			state := "unchanged"
			if res.Changed {
				state = "published"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s (%s) from %s: %d files, %s pulled\n", state, res.Snapshot.ID,
				filepath.Join(cfg.TreeDir(), "current"), res.Upstream, res.Files, progress.FormatBytes(res.Bytes))
			return nil
		},
	}
	sf.on(cmd.Flags())
	sf.storeFlags()
	// The same settings as serve's --tree-upstream and --tree-keep.
	sf.Strings(&sf.vals.TreeUpstream, "upstream", "upstream rsync URL or local directory; repeatable: tried in order, the next after a failure")
	sf.Int(&sf.vals.TreeKeep, "keep", "how many snapshots to keep")
	sf.treeVerifyFlags()
	return cmd
}

// openTreeSync returns the tree mirror: a sync from --tree-upstream every
// --tree-interval.
func (s *server) openTreeSync(_ context.Context) (func(context.Context) error, error) {
	st, err := tree.Open(s.cfg.TreeDir())
	if err != nil {
		return nil, err
	}
	verify, err := treeVerifyHook(s.cfg, st, s.log)
	if err != nil {
		return nil, err
	}
	sy := &tree.Syncer{Store: st, Upstreams: s.cfg.TreeUpstream, Keep: s.cfg.TreeKeep, Log: s.log, Verify: verify}
	return func(ctx context.Context) error {
		sy.Run(ctx, s.cfg.TreeInterval)
		return nil
	}, nil
}
