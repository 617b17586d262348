package main

import (
	"errors"
	"log/slog"

	"github.com/lanmirror/lanmirror/internal/httpd"
	"github.com/lanmirror/lanmirror/internal/prefetch"
	"github.com/spf13/cobra"
)

func newPrefetchCmd() *cobra.Command {
	o := prefetch.Options{}
	sf := newSettingsFlags()
	cmd := &cobra.Command{
		Use:   "prefetch [ATOM...]",
		Short: "download the distfiles of packages (or a list of names) into the cache",
		Long: `prefetch downloads distfiles into the cache through the cache's own fetcher
(one download per file, verified against the Manifest before it is kept):

  ATOM        CATEGORY/PACKAGE: every DIST entry of its Manifest in the tree
  --file F    distfile names, one per line ('#' starts a comment; - is stdin)

Files already cached are not downloaded again. Downloads run in parallel
(-j). At the end a summary lists fetched, already cached and failed files with
the reason of each failure; the exit status is non-zero if any failed.

The tree is --tree, else DATA/tree/current; it is required for atoms. Names
from --file without a tree are checked against the size upstream announces.`,
		Example: `  lanmirror prefetch --tree /var/db/repos/gentoo sys-devel/gcc dev-lang/rust
  lanmirror prefetch --file names.txt -j 8 --mirror https://distfiles.gentoo.org`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := sf.settings()
			if err != nil {
				return err
			}
			o.DataDir, o.Tree, o.Mirrors = cfg.DataDir, cfg.LocalTree(), cfg.Mirrors
			if cfg.UpstreamProxy != "" {
				policy, err := httpd.NewPolicy(append(append([]string(nil), cfg.Mirrors...), cfg.UpstreamProxy), nil)
				if err != nil {
					return err
				}
				if o.Client, err = upstreamClient(policy, cfg.UpstreamProxy); err != nil {
					return err
				}
			}
			if len(args) == 0 && o.File == "" {
				return errors.New("prefetch: give package atoms or --file")
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			return prefetch.Run(cmd.Context(), o, args, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr(), log)
		},
	}
	sf.on(cmd.Flags())
	sf.storeFlags()
	sf.treeFlags()
	sf.mirrorFlags()
	f := cmd.Flags()
	f.IntVarP(&o.Jobs, "jobs", "j", 4, "downloads at once")
	f.StringVar(&o.File, "file", "", "file with distfile names, one per line (- for standard input)")
	return cmd
}
