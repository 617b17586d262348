// Package prefetch downloads distfiles (of packages, or named in a list)
// into the cache through the cache's own fetcher (lanmirror prefetch).
package prefetch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/lanmirror/lanmirror/internal/distcache"
	"github.com/lanmirror/lanmirror/internal/gentoo"
	"github.com/lanmirror/lanmirror/internal/progress"
	"golang.org/x/sync/errgroup"
)

// Options are the settings of a prefetch.
type Options struct {
	DataDir string       // the cache's data directory
	Tree    string       // ebuild repository with the Manifests; "" for none
	Mirrors []string     // upstream distfiles mirrors, tried in order
	Client  *http.Client // for the downloads; nil: distcache's default
	Jobs    int          // downloads at once
	File    string       // file with distfile names ("-": stdin)
}

// prefetchItem is one distfile to fetch, or a request that could not be
// resolved (err set).
type prefetchItem struct {
	name string
	err  error
}

// Run resolves atoms and names, fetches them and reports to out; the
// progress bar goes to errw when it is a terminal. stdin is read for the
// file name "-".
func Run(ctx context.Context, o Options, atoms []string, stdin io.Reader, out, errw io.Writer, log *slog.Logger) error {
	var idx *gentoo.DistIndex
	if o.Tree != "" {
		var err error
		if idx, err = gentoo.LoadDistIndex(ctx, o.Tree, log); err != nil {
			return fmt.Errorf("prefetch: %w", err)
		}
	} else if len(atoms) > 0 {
		return errors.New("prefetch: package atoms need a tree: give --tree")
	}
	items, err := prefetchItems(idx, atoms, o.File, stdin)
	if err != nil {
		return fmt.Errorf("prefetch: %w", err)
	}

	if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
		return fmt.Errorf("prefetch: %w", err)
	}
	st, err := distcache.OpenStore(o.DataDir, log)
	if err != nil {
		return fmt.Errorf("prefetch: %w", err)
	}
	defer st.Close()
	opts := distcache.Options{Store: st, Mirrors: o.Mirrors, Client: o.Client, Log: log}
	if idx != nil {
		opts.Verifier = idx
	}
	cache, err := distcache.New(opts)
	if err != nil {
		return fmt.Errorf("prefetch: %w", err)
	}
	defer cache.Close()

	bar := progress.New(errw, int64(len(items)), "prefetch", false)
	type result struct {
		name    string
		outcome string // fetched, cached, failed
		bytes   int64
		err     error
	}
	var mu sync.Mutex
	var results []result
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, o.Jobs))
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
			bar.Add(1)
			return nil
		})
	}
	g.Wait()
	bar.Finish()

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
		n["fetched"], progress.FormatBytes(bytes["fetched"]), n["cached"], progress.FormatBytes(bytes["cached"]), n["failed"])
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
