//go:build !unix

package flist

import "io/fs"

// ownerOf returns 0, 0 where numeric owners are not available.
func ownerOf(fs.FileInfo) (uid, gid uint32) { return 0, 0 }
