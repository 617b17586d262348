package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/lanmirror/lanmirror/internal/config"
	"github.com/lanmirror/lanmirror/internal/distcache"
	"github.com/lanmirror/lanmirror/internal/gentoo"
)

// The daemon verifies distfiles against the DIST entries of --tree (or of
// the published snapshot when --tree-upstream is set, which makes --tree
// DATA/tree/current). The index is a gentoo.TreeIndex: built in the
// background by the "distindex" component, so the server starts at once;
// until the first build is done (a few seconds for the full tree) every
// name is unknown and downloads are checked against their announced size
// only. It follows the tree when the snapshot symlink is swapped or the
// tree's metadata/timestamp.chk changes, and stops with the serve context.
func init() {
	distVerifier = func(env *serveEnv) distcache.Verifier {
		if ti := serveTreeIndex(env); ti != nil {
			return ti
		}
		return nil // no tree: an untyped nil, not a nil *TreeIndex
	}
	addComponent(component{
		name: "distindex",
		enabled: func(cfg *config.Serve) bool {
			return cfg.Tree != "" && (cfg.HTTPAddr != "" || cleanEnabled(cfg))
		},
		open: func(_ context.Context, env *serveEnv) (func(context.Context) error, error) {
			ti := serveTreeIndex(env)
			return func(ctx context.Context) error {
				defer forgetTreeIndex(env)
				ti.Run(ctx)
				return nil
			}, nil
		},
	})
}

// treeIndexes holds the one TreeIndex of each running serve.
var treeIndexes = struct {
	sync.Mutex
	m map[*serveEnv]*gentoo.TreeIndex
}{m: map[*serveEnv]*gentoo.TreeIndex{}}

// serveTreeIndex returns the TreeIndex of env's tree (created, not yet
// running, on first use), or nil when serve has no tree.
func serveTreeIndex(env *serveEnv) *gentoo.TreeIndex {
	if env.cfg.Tree == "" {
		return nil
	}
	treeIndexes.Lock()
	defer treeIndexes.Unlock()
	ti := treeIndexes.m[env]
	if ti == nil {
		ti = gentoo.NewTreeIndex(env.cfg.Tree, gentoo.TreeIndexOptions{Log: env.log})
		treeIndexes.m[env] = ti
	}
	return ti
}

func forgetTreeIndex(env *serveEnv) {
	treeIndexes.Lock()
	delete(treeIndexes.m, env)
	treeIndexes.Unlock()
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
