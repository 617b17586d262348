package distcache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/lanmirror/lanmirror/internal/gentoo"
	"github.com/lanmirror/lanmirror/internal/objstore"
)

// Backend returns the store as an objstore.Backend: the interface the
// Cache keeps complete objects behind when Options.Remote names another
// backend (S3). With the local disk (Options.Remote nil) the Cache uses
// the Store directly, keeping its sendfile hit path.
func (s *Store) Backend() objstore.Backend { return diskBackend{s} }

type diskBackend struct{ s *Store }

func (b diskBackend) Stat(_ context.Context, key string) (objstore.Info, error) {
	fi, err := b.s.Stat(key)
	if err != nil {
		return objstore.Info{}, err
	}
	return b.info(key, fi), nil
}

func (b diskBackend) info(key string, fi fs.FileInfo) objstore.Info {
	in := objstore.Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime(), Stored: fi.ModTime()}
	if m, ok := b.s.readMeta(key); ok {
		in.ContentType, in.ETag, in.LastModified = m.ContentType, m.ETag, m.LastModified
		if !m.Fetched.IsZero() {
			in.Stored = m.Fetched
		}
	}
	return in
}

func (b diskBackend) Open(_ context.Context, key string, off int64) (io.ReadCloser, error) {
	f, _, err := b.s.Open(key)
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("distcache: %s: %w", key, err)
	}
	return f, nil
}

func (b diskBackend) Commit(_ context.Context, key string, src *os.File, in objstore.Info) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	f, tmp, err := b.s.createTemp()
	if err != nil {
		return err
	}
	buf := make([]byte, 256<<10)
	_, err = io.CopyBuffer(onlyWriter{f}, io.NewSectionReader(src, 0, in.Size), buf)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && !in.ModTime.IsZero() {
		err = b.s.root.Chtimes(tmp, in.ModTime, in.ModTime)
	}
	if err == nil && (in.ETag != "" || in.LastModified != "" || in.ContentType != "") {
		err = b.s.writeMeta(key, meta{ETag: in.ETag, LastModified: in.LastModified, ContentType: in.ContentType, Fetched: in.Stored})
	}
	if err == nil {
		err = b.s.commit(tmp, key)
	}
	if err != nil {
		b.s.root.Remove(tmp)
		return fmt.Errorf("distcache: commit %s: %w", key, err)
	}
	return nil
}

func (b diskBackend) Delete(_ context.Context, key string) error { return b.s.Remove(key) }

func (b diskBackend) List(_ context.Context, prefix string) ([]objstore.Info, error) {
	ents, err := b.s.Entries(prefix)
	if err != nil {
		return nil, err
	}
	out := make([]objstore.Info, len(ents))
	for i, e := range ents {
		out[i] = objstore.Info{Key: e.Key, Size: e.Size, ModTime: e.ModTime, Stored: e.ModTime}
	}
	return out, nil
}

// remoteBody is a complete object on the remote backend.
func remoteBody(be objstore.Backend, in objstore.Info, expect *gentoo.Dist, taint *taintSet) *Body {
	etag := manifestETag(expect)
	if etag == "" || in.Size != expect.Size {
		// The stored version: its size and when it was written.
		etag = fmt.Sprintf(`"o-%x-%x"`, in.Size, in.Stored.UnixNano())
	}
	return &Body{key: in.Key, remote: be, size: in.Size, modTime: in.ModTime, ctype: in.ContentType, etag: etag, taint: taint}
}

// remoteReader streams a remote object from an offset: one ranged read,
// opened at the first Read (a HEAD request reads nothing).
type remoteReader struct {
	be        objstore.Backend
	key       string
	off, size int64
	ctx       context.Context
	cancel    context.CancelFunc

	mu      sync.Mutex
	rc      io.ReadCloser
	reading bool
	closed  atomic.Bool
}

func newRemoteReader(be objstore.Backend, key string, off, size int64) *remoteReader {
	ctx, cancel := context.WithCancel(context.Background())
	return &remoteReader{be: be, key: key, off: off, size: size, ctx: ctx, cancel: cancel}
}

func (r *remoteReader) Read(p []byte) (int, error) {
	if r.closed.Load() {
		return 0, errClosed
	}
	if r.off >= r.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	r.mu.Lock()
	if r.rc == nil {
		rc, err := r.be.Open(r.ctx, r.key, r.off)
		if err != nil {
			r.mu.Unlock()
			if r.closed.Load() {
				return 0, errClosed
			}
			return 0, fmt.Errorf("distcache: %s: read from object storage: %w", r.key, err)
		}
		r.rc = rc
	}
	rc := r.rc
	r.reading = true
	r.mu.Unlock()
	if int64(len(p)) > r.size-r.off {
		p = p[:r.size-r.off]
	}
	n, err := rc.Read(p)
	r.mu.Lock()
	r.reading = false
	if r.closed.Load() && r.rc != nil {
		r.rc.Close()
		r.rc = nil
	}
	r.mu.Unlock()
	r.off += int64(n)
	switch {
	case err == io.EOF && r.off < r.size:
		err = fmt.Errorf("distcache: %s: object storage sent %d of %d bytes: %w", r.key, r.off, r.size, io.ErrUnexpectedEOF)
	case err == io.EOF && n > 0:
		err = nil
	case err != nil && err != io.EOF:
		if r.closed.Load() || errors.Is(err, context.Canceled) {
			err = errClosed
		} else {
			err = fmt.Errorf("distcache: %s: read from object storage: %w", r.key, err)
		}
	}
	return n, err
}

func (r *remoteReader) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	r.cancel()
	r.mu.Lock()
	if !r.reading && r.rc != nil {
		r.rc.Close()
		r.rc = nil
	}
	r.mu.Unlock()
	return nil
}

// isRemoteLease reports whether key takes part in cluster leases:
// immutable objects only (volatile ones are revalidated by each node).
func isRemoteLease(obj Object) bool {
	return !obj.Volatile && !strings.HasPrefix(obj.Key, ".")
}
