//go:build unix

package flist

import (
	"io/fs"
	"syscall"
)

// ownerOf returns the numeric owner and group of a file.
func ownerOf(fi fs.FileInfo) (uid, gid uint32) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Uid, st.Gid
	}
	return 0, 0
}
