package distcache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lanmirror/lanmirror/internal/objstore"
)

// sharedFile is an open file used by a download and its readers; it is
// closed when the last of them lets go.
type sharedFile struct {
	f    *os.File
	refs atomic.Int64
}

func newSharedFile(f *os.File) *sharedFile {
	s := &sharedFile{f: f}
	s.refs.Store(1)
	return s
}

func (s *sharedFile) acquire() *sharedFile {
	s.refs.Add(1)
	return s
}

func (s *sharedFile) release() {
	if s.refs.Add(-1) == 0 {
		s.f.Close()
	}
}

// errClosed is returned by a reader used after its Close or its Body's.
var errClosed = errors.New("distcache: reader closed")

// Body is an object being served: complete in the store, or arriving from
// a download that any number of Bodies share.
type Body struct {
	key    string
	d      *download // nil for a stored object
	file   *sharedFile
	remote objstore.Backend // a complete object on the remote backend (file nil)

	etag  string    // see etag.go
	taint *taintSet // the cache's tainted keys; nil: none

	// Stored objects.
	size    int64
	modTime time.Time
	ctype   string

	// data holds the whole object when it is served from memory (file
	// is nil then; see small.go).
	data     []byte
	inMemory bool

	closeOnce   sync.Once
	closed      atomic.Bool
	offsetTaken atomic.Bool // a reader uses the stored file's offset
}

// memoryBody serves the small file f from memory.
func memoryBody(f *smallFile, ctype, etag string) *Body {
	return &Body{key: f.key, data: f.data, inMemory: true, size: int64(len(f.data)), modTime: f.fi.ModTime(), ctype: ctype, etag: etag}
}

// Bytes returns the whole object when the Body serves it from memory
// (then the caller may write it out directly, without a reader); ok is
// false otherwise. The bytes must not be modified.
func (b *Body) Bytes() (data []byte, ok bool) {
	if !b.inMemory || b.closed.Load() {
		return nil, false
	}
	return b.data, true
}

func storedBody(key string, f *os.File, fi fs.FileInfo, ctype, etag string) *Body {
	return &Body{key: key, file: newSharedFile(f), size: fi.Size(), modTime: fi.ModTime(), ctype: ctype, etag: etag}
}

// Key returns the store key of the object.
func (b *Body) Key() string { return b.key }

// ETag returns the strong entity tag of the bytes this Body serves,
// quoted (see etag.go): a Range continuation may be answered with 206
// for an If-Range equal to it.
func (b *Body) ETag() string { return b.etag }

// Tainted reports whether a transfer of this object recently ended or
// restarted after bytes that were never verified had been handed to
// clients (a copy that failed its Manifest digest, an upstream that
// changed the file): a client continuing with Range may hold such a head,
// so it gets a 206 only when it proves what it holds (If-Range equal to
// ETag). Names are remembered for Options.TaintTTL.
func (b *Body) Tainted() bool { return b.taint != nil && b.taint.has(b.key) }

// Size returns the total length, or -1 while it is unknown (an upstream
// answer without Content-Length, until the download ends).
func (b *Body) Size() int64 {
	if b.d == nil {
		return b.size
	}
	b.d.mu.Lock()
	defer b.d.mu.Unlock()
	return b.d.size
}

// ModTime returns the upstream Last-Modified time or the file's mtime.
func (b *Body) ModTime() time.Time {
	if b.d == nil {
		return b.modTime
	}
	b.d.mu.Lock()
	defer b.d.mu.Unlock()
	return b.d.modTime
}

// ContentType returns the upstream Content-Type, or "" when unknown.
func (b *Body) ContentType() string {
	if b.d == nil {
		return b.ctype
	}
	b.d.mu.Lock()
	defer b.d.mu.Unlock()
	return b.d.ctype
}

// NewReader returns the bytes from off. Reads block until the bytes exist;
// the final byte of a download is held back until the file is verified
// and committed, so io.EOF comes only at the verified end. Any failure of
// the download is an error, never a short read that looks complete. The
// reader must be closed (before or after the Body); Close may be called
// from another goroutine to end a Read that waits for upstream (e.g. when
// the client went away).
func (b *Body) NewReader(off int64) io.ReadCloser {
	if off < 0 {
		return errReader{fmt.Errorf("distcache: negative offset %d", off)}
	}
	if b.closed.Load() {
		return errReader{errClosed}
	}
	if b.remote != nil {
		return newRemoteReader(b.remote, b.key, off, b.size)
	}
	if b.inMemory {
		return &memReader{data: b.data, off: min(off, int64(len(b.data)))}
	}
	if b.d == nil {
		if b.offsetTaken.CompareAndSwap(false, true) {
			// The first reader owns the file offset: it can be sent
			// with sendfile(2).
			if _, err := b.file.f.Seek(off, io.SeekStart); err == nil {
				return &fileReader{file: b.file.acquire()}
			}
		}
		return &storedReader{file: b.file.acquire(), off: off, size: b.size}
	}
	d := b.d
	d.mu.Lock()
	r := &downloadReader{d: d, file: b.file.acquire(), off: off, epoch: d.epoch, size: d.size, closed: make(chan struct{})}
	d.mu.Unlock()
	return r
}

// Wait blocks until the object is committed to the store (nil) or its
// download failed (the error), or ctx ends.
func (b *Body) Wait(ctx context.Context) error {
	if b.d == nil {
		return nil
	}
	select {
	case <-b.d.finished:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	b.d.mu.Lock()
	defer b.d.mu.Unlock()
	if b.d.committed || b.d.useStored {
		return nil
	}
	return b.d.failure()
}

// Close tells that the caller is done with the Body; readers already made
// stay usable until closed.
func (b *Body) Close() error {
	b.closeOnce.Do(func() {
		b.closed.Store(true)
		if b.file != nil {
			b.file.release()
		}
	})
	return nil
}

// failure is the error of a download that ended without committing; d.mu
// held.
func (d *download) failure() error {
	if d.err != nil {
		return d.err
	}
	return fmt.Errorf("%w: %s: download abandoned", ErrUpstream, d.key)
}

// fileReader reads a complete object through its file's own offset. It
// implements syscall.Conn, so net/http (io.Copy to a ResponseWriter, also
// through an io.LimitReader) sends it with sendfile(2).
type fileReader struct {
	file      *sharedFile
	closeOnce sync.Once
	done      atomic.Bool
}

func (r *fileReader) Read(p []byte) (int, error) {
	if r.done.Load() {
		return 0, errClosed
	}
	return r.file.f.Read(p)
}

// SyscallConn gives the file descriptor to sendfile.
func (r *fileReader) SyscallConn() (syscall.RawConn, error) {
	if r.done.Load() {
		return nil, errClosed
	}
	return r.file.f.SyscallConn()
}

func (r *fileReader) Close() error {
	r.closeOnce.Do(func() {
		r.done.Store(true)
		r.file.release()
	})
	return nil
}

// storedReader reads a complete object at offsets of its own (pread).
type storedReader struct {
	file      *sharedFile
	off, size int64
	closeOnce sync.Once
	done      atomic.Bool
}

func (r *storedReader) Read(p []byte) (int, error) {
	if r.done.Load() {
		return 0, errClosed
	}
	if r.off >= r.size {
		return 0, io.EOF
	}
	if int64(len(p)) > r.size-r.off {
		p = p[:r.size-r.off]
	}
	n, err := r.file.f.ReadAt(p, r.off)
	r.off += int64(n)
	if err == io.EOF && r.off < r.size {
		err = fmt.Errorf("distcache: cached file shrank while being read: %w", io.ErrUnexpectedEOF)
	} else if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (r *storedReader) Close() error {
	r.closeOnce.Do(func() {
		r.done.Store(true)
		r.file.release()
	})
	return nil
}

// downloadReader follows a download.
type downloadReader struct {
	d         *download
	file      *sharedFile
	off       int64
	epoch     int   // the download's data generation this reader follows
	size      int64 // the size it was told
	delivered int64
	closed    chan struct{}
	closeOnce sync.Once
}

func (r *downloadReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	d := r.d
	for {
		select {
		case <-r.closed:
			return 0, errClosed
		default:
		}
		d.mu.Lock()
		ok, err := r.checkEpoch()
		if err != nil {
			d.mu.Unlock()
			return 0, err
		}
		if d.done && !d.committed {
			err := d.failure()
			d.mu.Unlock()
			return 0, err
		}
		avail := d.written
		if !d.committed {
			// The final byte is held back until the file is verified;
			// with no known size, the last byte received might be it.
			if d.size >= 0 {
				avail = min(avail, d.size-1)
			} else {
				avail--
			}
		}
		if ok && r.off < avail {
			n := min(int64(len(p)), avail-r.off)
			d.mu.Unlock()
			got, err := r.file.f.ReadAt(p[:n], r.off)
			d.mu.Lock()
			// A reset while reading may have replaced these bytes.
			stale := d.epoch != r.epoch
			d.mu.Unlock()
			if stale {
				continue
			}
			if got < int(n) && err == nil {
				err = io.ErrUnexpectedEOF
			}
			if err != nil && got < int(n) {
				return 0, fmt.Errorf("distcache: %s: read temporary file: %w", d.key, err)
			}
			r.off += int64(got)
			r.delivered += int64(got)
			return got, nil
		}
		if ok && d.committed && r.off >= d.written {
			d.mu.Unlock()
			return 0, io.EOF
		}
		ch := d.changed
		d.mu.Unlock()
		select {
		case <-ch:
		case <-r.closed:
			return 0, errClosed
		}
	}
}

// checkEpoch follows a restart of the download's data when this reader
// has not passed any byte on and the size it was told still holds; else
// the reader fails. It reports false when the reader must wait to decide.
// d.mu held.
func (r *downloadReader) checkEpoch() (bool, error) {
	d := r.d
	if d.epoch == r.epoch {
		if r.size < 0 && d.size >= 0 && r.delivered == 0 {
			r.size = d.size
		}
		return true, nil
	}
	if r.delivered == 0 {
		switch {
		case r.size < 0 || d.size == r.size:
			r.epoch, r.size = d.epoch, d.size
			return true, nil
		case d.size < 0 && !d.done:
			return false, nil // the restarted transfer has not said its size yet
		}
	}
	return false, fmt.Errorf("%w: %s: the upstream transfer had to restart after %d bytes were sent", ErrUpstream, d.key, r.delivered)
}

func (r *downloadReader) Close() error {
	r.closeOnce.Do(func() {
		close(r.closed)
		r.file.release()
	})
	return nil
}

// memReader reads an object served from memory.
type memReader struct {
	data []byte
	off  int64
	done atomic.Bool
}

func (r *memReader) Read(p []byte) (int, error) {
	if r.done.Load() {
		return 0, errClosed
	}
	if r.off >= int64(len(r.data)) {
		return 0, io.EOF
	}
	n := copy(p, r.data[r.off:])
	r.off += int64(n)
	return n, nil
}

func (r *memReader) Close() error {
	r.done.Store(true)
	return nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
func (e errReader) Close() error             { return nil }
