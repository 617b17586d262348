package sender

import (
	"errors"
	"io"
	"os"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// opener opens the session's source files. On Linux it resolves each
// path with one openat2(RESOLVE_BENEATH) call relative to the module
// root's descriptor: the kernel keeps the lookup inside the module, as
// os.Root does with one openat per path component. Whatever openat2
// refuses or fails on (an old kernel, a symlink leaving the module, a
// vanished file) is retried through the Root, so errors and results are
// the Root's.
type opener struct {
	root  *os.Root
	dir   *os.File // the module root directory; nil: Root only
	dirfd int      // dir's descriptor
	cpath []byte   // the path being opened, NUL-terminated (reused)
}

func newOpener(root *os.Root) *opener {
	o := &opener{root: root}
	if d, err := root.Open("."); err == nil {
		o.dir, o.dirfd = d, int(d.Fd())
	}
	return o
}

// open opens the regular file at path (module-relative) into f.
func (o *opener) open(path string, f *srcFile) error {
	if o.dir != nil {
		how := unix.OpenHow{
			Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOCTTY | unix.O_NONBLOCK,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
		}
		var fd int
		var err error
		for {
			fd, err = o.openat2(path, &how)
			if !errors.Is(err, unix.EINTR) {
				break
			}
		}
		if err == nil {
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil {
				unix.Close(fd)
				return &os.PathError{Op: "stat", Path: path, Err: err}
			}
			if st.Mode&unix.S_IFMT != unix.S_IFREG {
				// (Not retried through the Root: opening a fifo there
				// would block.)
				unix.Close(fd)
				return errNotRegular
			}
			*f = srcFile{name: path, fd: fd, remain: st.Size}
			return nil
		}
		if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
			o.close() // no openat2 here (old kernel, seccomp)
		}
	}
	return openRoot(o.root, path, f)
}

// openat2 is unix.Openat2 relative to the root, without its allocation
// of a NUL-terminated copy of path for every call: the copy is kept in
// o.cpath from call to call.
func (o *opener) openat2(path string, how *unix.OpenHow) (int, error) {
	if strings.IndexByte(path, 0) >= 0 {
		return -1, unix.EINVAL // (as unix.Openat2 answers)
	}
	o.cpath = append(append(o.cpath[:0], path...), 0)
	fd, _, errno := syscall.Syscall6(unix.SYS_OPENAT2, uintptr(o.dirfd), uintptr(unsafe.Pointer(&o.cpath[0])),
		uintptr(unsafe.Pointer(how)), unsafe.Sizeof(*how), 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// close releases the root descriptor.
func (o *opener) close() {
	if o.dir != nil {
		o.dir.Close()
		o.dir = nil
	}
}

func rawRead(fd int, p []byte) (int, error) {
	for {
		n, err := unix.Read(fd, p)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if n < 0 {
			n = 0
		}
		if err == nil && n == 0 && len(p) > 0 {
			return 0, io.EOF
		}
		return n, err
	}
}

func rawClose(fd int) error { return unix.Close(fd) }
