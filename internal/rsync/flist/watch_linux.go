package flist

import (
	"errors"

	"golang.org/x/sys/unix"
)

// watchMask is every change that can alter a file list: entries added,
// removed or renamed, and changes of contents or attributes.
const watchMask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO |
	unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_CLOSE_WRITE | unix.IN_DELETE_SELF |
	unix.IN_MOVE_SELF | unix.IN_ONLYDIR | unix.IN_DONT_FOLLOW

// watcher marks a scan stale when inotify has queued any change in one
// of its directories, so that checking freshness costs one read instead
// of one lstat per directory. Any doubt (queue overflow, read error)
// counts as a change. Its methods are called with the Cache's lock held.
type watcher struct {
	fd    int
	dirty bool
}

// remoteFS are file systems whose changes made elsewhere inotify does
// not report (network and FUSE file systems).
var remoteFS = map[int64]string{
	0x6969:     "nfs",
	0x517B:     "smb",
	0xFF534D42: "cifs",
	0xFE534D42: "smb2",
	0x65735546: "fuse",
	0x00C36400: "ceph",
	0x01021997: "9p",
	0x47504653: "gpfs",
	0x0BD00BD0: "lustre",
}

// watchable tells whether inotify sees every change below dir.
func watchable(dir string) (bool, string) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false, err.Error()
	}
	if name, ok := remoteFS[int64(st.Type)]; ok {
		return false, name + " file system"
	}
	return true, ""
}

func newWatcher() (*watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, err
	}
	return &watcher{fd: fd}, nil
}

// add watches one directory (an absolute path).
func (w *watcher) add(dir string) error {
	_, err := unix.InotifyAddWatch(w.fd, dir, watchMask)
	return err
}

// changed reports whether anything changed since the watches were set:
// it drains the queued events without blocking.
func (w *watcher) changed() bool {
	if w.dirty {
		return true
	}
	var buf [4096]byte
	for {
		n, err := unix.Read(w.fd, buf[:])
		switch {
		case n > 0:
			w.dirty = true
		case errors.Is(err, unix.EINTR):
		case errors.Is(err, unix.EAGAIN):
			return w.dirty
		default:
			w.dirty = true
			return true
		}
	}
}

// close stops watching.
func (w *watcher) close() { unix.Close(w.fd) }
