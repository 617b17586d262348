package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/lanmirror/lanmirror/internal/config"
	"github.com/lanmirror/lanmirror/internal/gentoo"
)

// The daemon verifies distfiles against the DIST entries of --tree (or of
// the published snapshot when --tree-upstream is set, which makes --tree
// DATA/tree/current). The index is a gentoo.TreeIndex (server.index): built
// in the background by the "distindex" part, so the server starts at once;
// until the first build is done (a few seconds for the full tree) every
// name is unknown and downloads are checked against their announced size
// only. It follows the tree when the snapshot symlink is swapped or the
// tree's metadata/timestamp.chk changes, and stops with the serve context.
func (s *server) openDistIndex(_ context.Context) (func(context.Context) error, error) {
	return func(ctx context.Context) error {
		s.index.Run(ctx)
		return nil
	}, nil
}

// treePath is the ebuild tree the cache tools verify against: --tree when
// given, else the published snapshot DATA/tree/current when there is one,
// else "" (no tree).
func treePath(dataDir, tree string) string {
	if tree != "" {
		return tree
	}
	cfg := config.Serve{DataDir: dataDir}
	cur := filepath.Join(cfg.TreeDir(), "current")
	if fi, err := os.Stat(cur); err == nil && fi.IsDir() {
		return cur
	}
	return ""
}

// loadDistIndex builds the DIST index of the tree at path (a symlink is
// resolved first, so one snapshot is read throughout) and logs its size.
func loadDistIndex(ctx context.Context, path string, log *slog.Logger) (*gentoo.DistIndex, error) {
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, fmt.Errorf("tree: %w", err)
	}
	x, err := gentoo.BuildDistIndex(ctx, target, gentoo.IndexOptions{Log: log})
	if err != nil {
		return nil, err
	}
	s := x.Stats()
	log.Info("tree indexed", "tree", target, "packages", s.Packages, "distfiles", s.Dists, "took", s.Duration.Round(1e6))
	return x, nil
}
