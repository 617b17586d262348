//go:build !unix

package distcache

import "os"

// tryLock without flock: every directory counts as free (one process per
// data directory on such systems).
func tryLock(*os.File) (bool, error) { return true, nil }

// fileID: no inode numbers here; the size and time identify the file.
func fileID(os.FileInfo) uint64 { return 0 }
