package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/lanmirror/lanmirror/internal/distcache"
	"github.com/lanmirror/lanmirror/internal/evict"
	"github.com/lanmirror/lanmirror/internal/gentoo"
	"github.com/spf13/cobra"
)

// defaultGrace is how long a distfile no DIST entry references stays in the
// cache after its last use.
const defaultGrace = 30 * 24 * time.Hour

func newCleanCmd() *cobra.Command {
	var grace string
	var dryRun bool
	sf := newSettingsFlags()
	cmd := &cobra.Command{
		Use:   "clean",
		Short: "remove distfiles the tree no longer references, and the least recently served ones above a size cap",
		Long: `clean removes from the distfiles cache:

  1. when a tree is known (--tree, else DATA/tree/current): files no DIST entry
     of the tree references, once they have not been served (or, if never
     served, not modified) for the grace period, like eclean-dist;
  2. with --max-cache: the least recently served files (lanmirror's own record,
     not the file system's atime; files never served count from their
     modification time) until the cache fits the cap.

--dry-run lists what would go and the space it would free, and changes nothing.
Downloads in progress are never touched: only complete files are considered.
The daemon does the same periodically with serve --clean-interval/--max-cache.`,
		Example: `  lanmirror clean --data /var/cache/lanmirror --tree /var/db/repos/gentoo --dry-run
  lanmirror clean --max-cache 200G --grace 60d`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := sf.settings()
			if err != nil {
				return err
			}
			dataDir := cfg.DataDir
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			pol := evict.Policy{MaxSize: cfg.MaxCache}
			g, err := parseAge(grace)
			if err != nil {
				return fmt.Errorf("--grace: %w", err)
			}
			pol.Grace = g
			var idx *gentoo.DistIndex
			if tp := cfg.LocalTree(); tp != "" {
				if idx, err = gentoo.LoadDistIndex(cmd.Context(), tp, log); err != nil {
					return fmt.Errorf("clean: %w", err)
				}
				if pol.Referenced, err = evict.ReferencedBy(idx); err != nil {
					return fmt.Errorf("clean: %w", err)
				}
			}
			if pol.Referenced == nil && pol.MaxSize == 0 {
				return errors.New("clean: nothing to do: no tree to compare with (--tree) and no --max-cache")
			}
			if _, err := os.Stat(dataDir); err != nil {
				return fmt.Errorf("clean: no cache here: %w", err)
			}
			st, err := distcache.OpenStore(dataDir, log)
			if err != nil {
				return fmt.Errorf("clean: %w", err)
			}
			defer st.Close()
			res, err := evict.Clean(cmd.Context(), st, pol, dryRun)
			if err != nil && res.Files == 0 {
				return err
			}
			evict.Report(cmd.OutOrStdout(), res, dryRun)
			return err
		},
	}
	sf.on(cmd.Flags())
	sf.storeFlags()
	sf.treeFlags()
	sf.cacheLimitFlags()
	f := cmd.Flags()
	f.StringVar(&grace, "grace", "30d", "how long unreferenced files are kept after their last use (e.g. 30d, 12h)")
	f.BoolVar(&dryRun, "dry-run", false, "list what would be removed, change nothing")
	return cmd
}

// parseAge parses a duration that may use days ("30d", "1.5d") or any
// time.ParseDuration form ("12h").
func parseAge(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(d, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("bad duration %q (want e.g. 30d or 12h)", s)
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("bad duration %q (want e.g. 30d or 12h)", s)
	}
	return d, nil
}
