package sender

import (
	"errors"
	"io"
	"os"
)

// errNotRegular reports a listed regular file that is something else now.
var errNotRegular = errors.New("not a regular file any more")

// srcFile is a source file opened for sending. It reads at most the size
// the file had when it was opened (as stock rsync maps st_size bytes), so
// that the end of a file costs no extra read call. It is either a raw
// descriptor (the fast path, see opener) or an *os.File from the Root,
// after the bytes the opener has read already (pre). A small file read
// whole at open has only pre and no descriptor (fd -1).
type srcFile struct {
	name   string   // module-relative path, for errors
	pre    []byte   // contents read at open, served first
	fd     int      // raw descriptor when f is nil; -1: none
	f      *os.File // the Root's file, or nil
	remain int64    // bytes left to read after pre
}

// Read implements io.Reader.
func (f *srcFile) Read(p []byte) (int, error) {
	if len(f.pre) > 0 {
		n := copy(p, f.pre)
		f.pre = f.pre[n:]
		return n, nil
	}
	if f.remain <= 0 || (f.f == nil && f.fd < 0) {
		return 0, io.EOF
	}
	if int64(len(p)) > f.remain {
		p = p[:f.remain]
	}
	var n int
	var err error
	if f.f != nil {
		n, err = f.f.Read(p)
	} else {
		n, err = rawRead(f.fd, p)
		if err != nil && err != io.EOF {
			err = &os.PathError{Op: "read", Path: f.name, Err: err}
		}
	}
	f.remain -= int64(n)
	return n, err
}

// Close closes the file.
func (f *srcFile) Close() error {
	f.pre = nil
	if f.f != nil {
		return f.f.Close()
	}
	if f.fd < 0 {
		return nil
	}
	return rawClose(f.fd)
}

// openRoot opens path through the Root (the portable, slower way: one
// openat per path component) and checks that it is a regular file.
func openRoot(root interface {
	Open(string) (*os.File, error)
}, path string, f *srcFile) error {
	fh, err := root.Open(path)
	if err != nil {
		return err
	}
	fi, err := fh.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = errNotRegular
	}
	if err != nil {
		fh.Close()
		return err
	}
	*f = srcFile{name: path, f: fh, remain: fi.Size()}
	return nil
}
