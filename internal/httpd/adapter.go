package httpd

import (
	"context"
	"io"

	"github.com/lanmirror/lanmirror/internal/distcache"
)

// FromDistcache adapts the cache engine to the Cache interface. Complete
// objects (HIT) are read through their own *os.File so that net/http can
// send them with sendfile.
func FromDistcache(c *distcache.Cache) Cache { return engine{c} }

type engine struct{ c *distcache.Cache }

func (e engine) Get(ctx context.Context, o Object) (Body, distcache.Outcome, error) {
	b, out, err := e.c.Get(ctx, distcache.Object{Key: o.Key, Sources: o.Sources, Volatile: o.Volatile})
	if err != nil {
		return nil, out, err
	}
	return e.wrap(b, out), out, nil
}

func (e engine) Distfile(ctx context.Context, name string, origins ...string) (Body, distcache.Outcome, error) {
	b, out, err := e.c.Distfile(ctx, name, origins...)
	if err != nil {
		return nil, out, err
	}
	return e.wrap(b, out), out, nil
}

func (e engine) wrap(b *distcache.Body, out distcache.Outcome) Body {
	if out != distcache.Hit {
		return b
	}
	return hitBody{b, e.c.Store()}
}

// hitBody serves a stored object from a file of its own.
type hitBody struct {
	*distcache.Body
	store *distcache.Store
}

// NewReader opens the stored file at off; when that is not possible (the
// file was evicted or replaced meanwhile) it reads through the Body.
func (h hitBody) NewReader(off int64) io.ReadCloser {
	f, fi, err := h.store.Open(h.Key())
	if err != nil {
		return h.Body.NewReader(off)
	}
	if fi.Size() != h.Size() || !fi.ModTime().Equal(h.ModTime()) {
		f.Close()
		return h.Body.NewReader(off)
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return h.Body.NewReader(off)
	}
	return f // *os.File: serveBody's LimitReader over it keeps the sendfile path
}
