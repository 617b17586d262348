package main

import (
	"errors"
	"fmt"
	"io"
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
			dataDir, tree := cfg.DataDir, cfg.Tree
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			pol := evict.Policy{MaxSize: cfg.MaxCache}
			g, err := parseAge(grace)
			if err != nil {
				return fmt.Errorf("--grace: %w", err)
			}
			pol.Grace = g
			var idx *gentoo.DistIndex
			if tp := treePath(dataDir, tree); tp != "" {
				if idx, err = loadDistIndex(cmd.Context(), tp, log); err != nil {
					return fmt.Errorf("clean: %w", err)
				}
				if pol.Referenced, err = referencedBy(idx); err != nil {
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
			reportClean(cmd.OutOrStdout(), res, dryRun)
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

// referencedBy turns a DIST index into the policy's Referenced test. An
// index without any DIST entry is refused: it would make every cached file
// unreferenced (a wrong --tree must not empty the cache).
//
// A tree that is gone by now (a snapshot pruned while it was read) is
// refused too: its index may be partial.
func referencedBy(idx *gentoo.DistIndex) (func(string) bool, error) {
	if idx.Len() == 0 {
		return nil, fmt.Errorf("tree %s has no DIST entries; refusing to treat every cached file as unreferenced", idx.Root())
	}
	if _, err := os.Stat(idx.Root()); err != nil {
		return nil, fmt.Errorf("tree %s vanished while it was indexed; refusing to use a partial index: %w", idx.Root(), err)
	}
	return idx.Has, nil
}

// reportClean writes one line per removed file and a summary.
func reportClean(w io.Writer, res evict.Result, dryRun bool) {
	verb := "removed"
	if dryRun {
		verb = "would remove"
	}
	for _, v := range res.Victims {
		used := "never"
		if !v.LastUse().IsZero() {
			used = v.LastUse().UTC().Format("2006-01-02 15:04")
		}
		served := "last served"
		if v.LastServed.IsZero() {
			served = "never served, modified"
		}
		fmt.Fprintf(w, "%s %s (%s, %s; %s %s)\n", verb, v.Name, formatBytes(v.Size), v.Reason, served, used)
	}
	if dryRun {
		fmt.Fprintf(w, "would remove %d of %d files, freeing %s (cache %s -> %s)\n",
			len(res.Victims), res.Files, formatBytes(res.Freed()), formatBytes(res.Before), formatBytes(res.After))
		return
	}
	fmt.Fprintf(w, "removed %d of %d files, freed %s (cache %s -> %s)\n",
		res.Removed, res.Files, formatBytes(res.RemovedBytes), formatBytes(res.Before), formatBytes(res.Before-res.RemovedBytes))
	for _, err := range res.Errors {
		fmt.Fprintf(w, "error: %v\n", err)
	}
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
