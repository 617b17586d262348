package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/lanmirror/lanmirror/internal/config"
	"github.com/lanmirror/lanmirror/internal/tree"
	"github.com/spf13/cobra"
)

func init() {
	addCommand(func() *cobra.Command {
		var dataDir, upstream string
		var keep int
		cmd := &cobra.Command{
			Use:   "sync",
			Short: "pull the ebuild tree from an upstream rsync mirror into a new atomic snapshot",
			Long: `sync mirrors the tree from --upstream into a new snapshot below DATA/tree and
publishes it atomically (DATA/tree/current). Nothing is copied when the upstream
metadata/timestamp.chk is unchanged; an upstream older than the local tree is refused.
The daemon does the same on a schedule with serve --tree-upstream.`,
			Example: "  lanmirror sync --data /var/cache/lanmirror --upstream rsync://rsync.gentoo.org/gentoo-portage/",
			Args:    cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				if upstream == "" {
					return fmt.Errorf("--upstream is required")
				}
				cfg := config.Serve{DataDir: dataDir}
				st, err := tree.Open(cfg.TreeDir())
				if err != nil {
					return err
				}
				sy := &tree.Syncer{Store: st, Upstream: upstream, Keep: keep,
					Log: slog.New(slog.NewTextHandler(os.Stderr, nil))}
				res, err := sy.Sync(cmd.Context())
				if err != nil {
					return err
				}
				state := "unchanged"
				if res.Changed {
					state = "published"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s (%s)\n", state, res.Snapshot.ID, filepath.Join(cfg.TreeDir(), "current"))
				return nil
			},
		}
		cmd.Flags().StringVar(&dataDir, "data", config.DefaultDataDir, "directory where all state lives")
		cmd.Flags().StringVar(&upstream, "upstream", "", "upstream rsync URL or local directory")
		cmd.Flags().IntVar(&keep, "keep", 3, "how many snapshots to keep")
		return cmd
	})

	addComponent(component{
		name:    "tree",
		enabled: func(cfg *config.Serve) bool { return cfg.TreeUpstream != "" },
		open: func(ctx context.Context, env *serveEnv) (func(context.Context) error, error) {
			st, err := tree.Open(env.cfg.TreeDir())
			if err != nil {
				return nil, err
			}
			sy := &tree.Syncer{Store: st, Upstream: env.cfg.TreeUpstream, Keep: env.cfg.TreeKeep, Log: env.log}
			return func(ctx context.Context) error {
				sy.Run(ctx, env.cfg.TreeInterval)
				return nil
			}, nil
		},
	})
}
