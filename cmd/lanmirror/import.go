package main

import (
	"fmt"
	"log/slog"
	"runtime"

	"github.com/lanmirror/lanmirror/internal/distimport"
	"github.com/spf13/cobra"
)

func newImportCmd() *cobra.Command {
	o := distimport.Options{}
	sf := newSettingsFlags()
	cmd := &cobra.Command{
		Use:   "import DISTDIR",
		Short: "bring the files of an existing DISTDIR into the distfiles cache, verified against the Manifests",
		Long: `import does repcacheman's job: every regular file in DISTDIR whose name has a
DIST entry in the tree and whose size, BLAKE2B and SHA512 match it enters the
cache (a hard link when DISTDIR is on the same filesystem, else a copy).

  corrupt  the file does not match its DIST entry: listed, left alone
  unknown  no DIST entry has its name: listed, left alone (--unknown imports
           it unverified; the cache then serves it as is)
  cached   the cache already holds a verified copy: skipped

Portage's partial downloads (*.__download__, *._checksum_failure_*) and
dot-files are ignored. --move removes each imported (or already cached) source
file. --dry-run reports what would happen and changes nothing.

The tree is --tree, else DATA/tree/current when lanmirror mirrors one.`,
		Example: `  lanmirror import /var/cache/distfiles --data /var/cache/lanmirror --tree /var/db/repos/gentoo
  lanmirror import /var/cache/distfiles --tree /var/db/repos/gentoo --move`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := sf.settings()
			if err != nil {
				return err
			}
			o.DataDir, o.Tree = cfg.DataDir, cfg.LocalTree()
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			sum, err := distimport.Run(cmd.Context(), o, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr(), log)
			if err != nil {
				return err
			}
			if sum.Failed > 0 && sum.Failed == sum.Examined {
				return fmt.Errorf("import: none of the %d files could be read or stored", sum.Failed)
			}
			return nil
		},
	}
	sf.on(cmd.Flags())
	sf.storeFlags()
	sf.treeFlags()
	f := cmd.Flags()
	f.BoolVar(&o.Move, "move", false, "remove each source file once it is in the cache")
	f.BoolVar(&o.DryRun, "dry-run", false, "report what would be done, change nothing")
	f.BoolVar(&o.Unknown, "unknown", false, "also import files no DIST entry knows (unverified)")
	f.IntVarP(&o.Jobs, "jobs", "j", runtime.GOMAXPROCS(0), "files verified at once")
	return cmd
}
