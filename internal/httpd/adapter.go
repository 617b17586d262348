package httpd

import (
	"context"

	"github.com/lanmirror/lanmirror/internal/distcache"
)

// FromDistcache adapts the cache engine to the Cache interface. (Readers
// of complete objects are *os.File, so serveBody's copy of them goes
// through net/http's sendfile path.)
func FromDistcache(c *distcache.Cache) Cache { return engine{c} }

type engine struct{ c *distcache.Cache }

func (e engine) Get(ctx context.Context, o Object) (Body, distcache.Outcome, error) {
	b, out, err := e.c.Get(ctx, distcache.Object{Key: o.Key, Sources: o.Sources, Volatile: o.Volatile})
	if err != nil {
		return nil, out, err
	}
	return b, out, nil
}

func (e engine) Distfile(ctx context.Context, name string, origins ...string) (Body, distcache.Outcome, error) {
	b, out, err := e.c.Distfile(ctx, name, origins...)
	if err != nil {
		return nil, out, err
	}
	return b, out, nil
}

// CachedDistfile answers the front's question: is distfile name in memory
// now (see distcache.Cache.CachedDistfile)?
func (e engine) CachedDistfile(name string) (Body, bool) {
	b, ok := e.c.CachedDistfile(name)
	if !ok {
		return nil, false
	}
	return b, true
}
