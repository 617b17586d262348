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
	buf   []byte   // openListed's buffer: smallMax+1 bytes once used
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
	fd := o.openFast(path)
	if fd < 0 {
		return openRoot(o.root, path, f)
	}
	return o.statOpened(fd, path, nil, f)
}

// smallMax is the largest listed size openListed reads whole at open
// (nearly every file of the Gentoo tree is smaller).
const smallMax = 64 << 10

// openListed is open for a file the file list gives as size bytes long.
// A small file is read whole at once, into the opener's buffer, by a
// read of one byte more than its listed size: a read returning exactly
// that size has reached the end of the file, whose descriptor is then
// closed before f is returned, without the fstat open makes (a system
// call in four for the tree's small files). Any other answer is settled
// as open would: an empty read, or one shorter or longer than the list
// says, checks the file with fstat and goes on reading; a directory or a
// fifo is refused as not regular. f's contents alias the opener's buffer
// until the next open.
func (o *opener) openListed(path string, size int64, f *srcFile) error {
	if size < 0 || size > smallMax {
		return o.open(path, f)
	}
	fd := o.openFast(path)
	if fd < 0 {
		return openRoot(o.root, path, f)
	}
	if o.buf == nil {
		o.buf = make([]byte, smallMax+1)
	}
	n, err := rawRead(fd, o.buf[:size+1])
	switch {
	case err == nil && int64(n) == size:
		unix.Close(fd)
		*f = srcFile{name: path, fd: -1, pre: o.buf[:n]}
		return nil
	case err == nil || err == io.EOF:
		return o.statOpened(fd, path, o.buf[:n], f)
	case errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EAGAIN):
		// A directory, or a fifo with a writer (opened non-blocking).
		unix.Close(fd)
		return errNotRegular
	default:
		unix.Close(fd)
		return &os.PathError{Op: "read", Path: path, Err: err}
	}
}

// openFast opens path with openat2 beneath the root. It returns -1 when
// the Root must open it instead (no openat2 here, or openat2 refused or
// failed on it: the Root then gives its own answer).
func (o *opener) openFast(path string) int {
	if o.dir == nil {
		return -1
	}
	how := unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOCTTY | unix.O_NONBLOCK,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	}
	for {
		fd, err := o.openat2(path, &how)
		if err == nil {
			return fd
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
			o.close() // no openat2 here (old kernel, seccomp)
		}
		return -1
	}
}

// statOpened checks that the open fd is a regular file and makes f read
// it, after the bytes pre already read from it, up to the size it has
// now.
func (o *opener) statOpened(fd int, path string, pre []byte, f *srcFile) error {
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
	*f = srcFile{name: path, fd: fd, pre: pre, remain: st.Size - int64(len(pre))}
	return nil
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
