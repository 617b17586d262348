package gentoo

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
)

// LoadDistIndex builds the DIST index of the tree at path (a symlink is
// resolved first, so one snapshot is read throughout) and logs its size.
func LoadDistIndex(ctx context.Context, path string, log *slog.Logger) (*DistIndex, error) {
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, fmt.Errorf("tree: %w", err)
	}
	x, err := BuildDistIndex(ctx, target, IndexOptions{Log: log})
	if err != nil {
		return nil, err
	}
	s := x.Stats()
	log.Info("tree indexed", "tree", target, "packages", s.Packages, "distfiles", s.Dists, "took", s.Duration.Round(1e6))
	return x, nil
}
