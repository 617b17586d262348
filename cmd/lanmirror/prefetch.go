package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/lanmirror/lanmirror/internal/distcache"
	"github.com/lanmirror/lanmirror/internal/gentoo"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
)

// prefetchOptions are the settings of lanmirror prefetch.
type prefetchOptions struct {
	dataDir string
	tree    string
	mirrors []string
	jobs    int
	file    string
}

func newPrefetchCmd() *cobra.Command {
	o := prefetchOptions{}
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
			o.dataDir, o.tree, o.mirrors = cfg.DataDir, cfg.Tree, cfg.Mirrors
			if len(args) == 0 && o.file == "" {
				return errors.New("prefetch: give package atoms or --file")
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			return runPrefetch(cmd.Context(), o, args, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr(), log)
		},
	}
	sf.on(cmd.Flags())
	sf.storeFlags()
	sf.treeFlags()
	sf.mirrorFlags()
	f := cmd.Flags()
	f.IntVarP(&o.jobs, "jobs", "j", 4, "downloads at once")
	f.StringVar(&o.file, "file", "", "file with distfile names, one per line (- for standard input)")
	return cmd
}

// prefetchItem is one distfile to fetch, or a request that could not be
// resolved (err set).
type prefetchItem struct {
	name string
	err  error
}

// runPrefetch resolves atoms and names, fetches them and reports.
func runPrefetch(ctx context.Context, o prefetchOptions, atoms []string, stdin io.Reader, out, errw io.Writer, log *slog.Logger) error {
	var idx *gentoo.DistIndex
	if tp := treePath(o.dataDir, o.tree); tp != "" {
		var err error
		if idx, err = loadDistIndex(ctx, tp, log); err != nil {
			return fmt.Errorf("prefetch: %w", err)
		}
	} else if len(atoms) > 0 {
		return errors.New("prefetch: package atoms need a tree: give --tree")
	}
	items, err := prefetchItems(idx, atoms, o.file, stdin)
	if err != nil {
		return fmt.Errorf("prefetch: %w", err)
	}

	if err := os.MkdirAll(o.dataDir, 0o755); err != nil {
		return fmt.Errorf("prefetch: %w", err)
	}
	st, err := distcache.OpenStore(o.dataDir, log)
	if err != nil {
		return fmt.Errorf("prefetch: %w", err)
	}
	defer st.Close()
	opts := distcache.Options{Store: st, Mirrors: o.mirrors, Log: log}
	if idx != nil {
		opts.Verifier = idx
	}
	cache, err := distcache.New(opts)
	if err != nil {
		return fmt.Errorf("prefetch: %w", err)
	}
	defer cache.Close()

	bar := newProgress(errw, int64(len(items)), "prefetch", false)
	type result struct {
		name    string
		outcome string // fetched, cached, failed
		bytes   int64
		err     error
	}
	var mu sync.Mutex
	var results []result
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, o.jobs))
	for _, it := range items {
		g.Go(func() error {
			r := result{name: it.name, outcome: "failed", err: it.err}
			if r.err == nil && gctx.Err() == nil {
				r.outcome, r.bytes, r.err = fetchOne(gctx, cache, it.name)
			} else if r.err == nil {
				r.err = gctx.Err()
			}
			mu.Lock()
			results = append(results, r)
			mu.Unlock()
			bar.add(1)
			return nil
		})
	}
	g.Wait()
	bar.finish()

	slices.SortFunc(results, func(a, b result) int { return strings.Compare(a.name, b.name) })
	n := map[string]int{}
	bytes := map[string]int64{}
	for _, r := range results {
		n[r.outcome]++
		bytes[r.outcome] += r.bytes
		if r.outcome == "failed" {
			fmt.Fprintf(out, "failed  %s: %v\n", r.name, r.err)
		}
	}
	fmt.Fprintf(out, "fetched %d (%s), already cached %d (%s), failed %d\n",
		n["fetched"], formatBytes(bytes["fetched"]), n["cached"], formatBytes(bytes["cached"]), n["failed"])
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("prefetch: %w", err)
	}
	if n["failed"] > 0 {
		return fmt.Errorf("prefetch: %d of %d files failed", n["failed"], len(results))
	}
	return nil
}

// fetchOne gets name through the cache and waits until it is in the store.
func fetchOne(ctx context.Context, cache *distcache.Cache, name string) (outcome string, size int64, err error) {
	body, oc, err := cache.Distfile(ctx, name)
	if err != nil {
		return "failed", 0, err
	}
	defer body.Close()
	if oc == distcache.Hit {
		return "cached", body.Size(), nil
	}
	if err := body.Wait(ctx); err != nil {
		return "failed", 0, err
	}
	return "fetched", body.Size(), nil
}

// prefetchItems resolves atoms through the index and reads names from
// file, without duplicates, in request order. Unresolvable atoms and bad
// names become items with an error (reported as failed).
func prefetchItems(idx *gentoo.DistIndex, atoms []string, file string, stdin io.Reader) ([]prefetchItem, error) {
	seen := map[string]bool{}
	var items []prefetchItem
	addName := func(name string) {
		if seen[name] {
			return
		}
		seen[name] = true
		it := prefetchItem{name: name}
		if err := distcache.CheckName(name); err != nil {
			it.err = err
		}
		items = append(items, it)
	}
	for _, a := range atoms {
		ds, err := idx.ForPackage(a)
		if err != nil {
			items = append(items, prefetchItem{name: a, err: err})
			continue
		}
		for _, d := range ds {
			addName(d.Name)
		}
	}
	if file != "" {
		var r io.Reader = stdin
		if file != "-" {
			f, err := os.Open(file)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			r = f
		}
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			line, _, _ := strings.Cut(sc.Text(), "#")
			if line = strings.TrimSpace(line); line != "" {
				addName(line)
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
	}
	return items, nil
}
