//go:build !linux

package tree

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// syncFS flushes every file and directory below dir (no syncfs(2) here):
// every file of a new snapshot is on disk before it is published.
func syncFS(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("tree: sync %s: %w", p, err)
		}
		if !d.Type().IsRegular() && !d.IsDir() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("tree: sync %s: %w", p, err)
		}
		defer f.Close()
		if err := f.Sync(); err != nil {
			return fmt.Errorf("tree: sync %s: %w", p, err)
		}
		return nil
	})
}
