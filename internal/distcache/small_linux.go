package distcache

import (
	"io/fs"
	"syscall"
)

// ctimeOf returns the file's status change time in nanoseconds.
func ctimeOf(fi fs.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ctim.Nano()
	}
	return 0
}
