package main

import (
	"context"
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
