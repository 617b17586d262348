package tree

import (
	"os"
	"path/filepath"

	"github.com/lanmirror/lanmirror/internal/status"
)

// Describe reports the tree served from path for the status page: the
// snapshot and when it was published when path is a store's current
// symlink, and the tree's metadata/timestamp.chk. ok is false when path
// does not exist (yet).
func Describe(path string) (t status.Tree, ok bool) {
	fi, err := os.Lstat(path)
	if err != nil {
		return status.Tree{}, false
	}
	t.Path = path
	if fi.Mode()&os.ModeSymlink != 0 {
		target, err := os.Readlink(path)
		if err != nil {
			return status.Tree{}, false
		}
		// The symlink is replaced by a rename at each publication: its
		// own time is the publication's.
		t.Snapshot = filepath.Base(target)
		t.Published = fi.ModTime()
	}
	if ts, err := ReadTimestamp(filepath.Join(path, "metadata", "timestamp.chk")); err == nil {
		t.Timestamp = ts
	}
	return t, true
}
