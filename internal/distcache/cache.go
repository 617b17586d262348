package distcache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lanmirror/lanmirror/internal/gentoo"
	"github.com/lanmirror/lanmirror/internal/objstore"
)

// Defaults of Options.
const (
	DefaultFresh       = 5 * time.Minute
	DefaultIdleTimeout = 60 * time.Second
	DefaultMaxDuration = 12 * time.Hour
)

// Options configure a Cache.
type Options struct {
	// Store holds the objects. The caller closes it after the Cache.
	Store *Store
	// Mirrors are GENTOO_MIRRORS-style base URLs; a distfile is at
	// BASE/distfiles/<layout path>, the layout read once per mirror from
	// BASE/distfiles/layout.conf (flat when absent or unreadable).
	Mirrors []string
	// Client fetches from upstream. nil: a client with connect, TLS and
	// response-header timeouts that ignores proxy settings from the
	// environment. A caller that must keep downloads away from some
	// addresses supplies a client whose dialer refuses them.
	Client *http.Client
	// Verifier gives the Manifest entry of a distfile; may be nil.
	Verifier Verifier
	// Fresh is how long a Volatile object is served without asking
	// upstream (0: DefaultFresh).
	Fresh time.Duration
	// IdleTimeout aborts an upstream transfer that sends nothing for this
	// long (the download then resumes or fails over; 0: DefaultIdleTimeout).
	IdleTimeout time.Duration
	// MaxDuration bounds one download, all retries included
	// (0: DefaultMaxDuration).
	MaxDuration time.Duration
	// IndexWait bounds how long Distfile waits for a Verifier that is
	// still building its index (an IndexWaiter) before it fails with
	// ErrIndexNotReady (0: DefaultIndexWait).
	IndexWait time.Duration
	// TaintTTL is how long a key stays tainted after a transfer of it was
	// aborted with unverified bytes handed out (0: DefaultTaintTTL);
	// TaintMax bounds how many keys are remembered (0: DefaultTaintMax).
	TaintTTL time.Duration
	TaintMax int
	// Log receives the fetcher's messages; nil discards them.
	Log *slog.Logger

	// Remote, when set, holds the complete objects instead of the Store
	// (S3: objstore.S3); the Store then only keeps the downloads in
	// progress and the local records. nil: the Store's directory.
	Remote objstore.Backend
	// Node names this process in cluster leases (nil Remote or a Remote
	// without leases: unused). "": host name, process id and a random
	// suffix.
	Node string
	// Peer is this node's HTTP base URL, written in its leases (for
	// operators and peers); may be "".
	Peer string
	// LeaseTTL is how long a lease lives without renewal: a node that
	// dies mid-download holds the name that long (0: DefaultLeaseTTL).
	LeaseTTL time.Duration
	// Peers are the other nodes' base URLs (their Peer): while one of
	// them holds the lease of a distfile, this node streams the file from
	// it instead of waiting for the object (on failure it waits as
	// without). Lease holders not in the list are waited for.
	Peers []string
	// HotCache, with a Remote, is the size in bytes of the local copies
	// of recently served distfiles kept in the Store's directory (see
	// hot.go); 0: none.
	HotCache int64
}

// DefaultIndexWait is the default of Options.IndexWait.
const DefaultIndexWait = 30 * time.Second

// IndexWaiter is implemented by a Verifier whose index is built in the
// background (gentoo.TreeIndex). Distfile waits, within
// Options.IndexWait, until WaitIndexed returns nil before it looks a
// name up, so that no distfile the tree names is fetched, kept or served
// unverified while the index is being built. WaitIndexed returns an error
// when the index cannot be built (at once, without waiting, when the
// build failed) or ctx ends.
type IndexWaiter interface {
	WaitIndexed(ctx context.Context) error
}

// DefaultLeaseTTL is the default Options.LeaseTTL.
const DefaultLeaseTTL = 30 * time.Second

// Cache is the coalescing fetcher on top of a Store: one upstream download
// per object however many clients ask, streamed to all of them as it
// arrives, resumed after breaks, verified before it is kept.
type Cache struct {
	store    *Store
	remote   objstore.Backend
	node     string
	peer     string
	leaseTTL time.Duration
	hot      *hotState // nil: no local copies
	peers    map[string]bool
	client   *http.Client
	verifier Verifier
	fresh    time.Duration
	idle     time.Duration
	maxDur   time.Duration
	log      *slog.Logger
	mirrors  atomic.Pointer[[]*mirror] // SetMirrors swaps it
	wait     time.Duration
	taint    *taintSet

	ctx    context.Context // downloads run under it; canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	now func() time.Time // the clock of freshness (tests move it)

	mu     sync.Mutex
	active map[string]*download
	closed bool
}

// New returns a Cache on o.Store.
func New(o Options) (*Cache, error) {
	if o.Store == nil {
		return nil, errors.New("distcache: no store")
	}
	c := &Cache{
		store:    o.Store,
		remote:   o.Remote,
		node:     o.Node,
		peer:     o.Peer,
		leaseTTL: o.LeaseTTL,
		peers:    map[string]bool{},
		client:   o.Client,
		verifier: o.Verifier,
		fresh:    o.Fresh,
		idle:     o.IdleTimeout,
		maxDur:   o.MaxDuration,
		log:      o.Log,
		wait:     o.IndexWait,
		taint:    newTaintSet(o.TaintTTL, o.TaintMax),
		active:   map[string]*download{},
		now:      time.Now,
	}
	if c.client == nil {
		c.client = DefaultClient()
	}
	if c.fresh <= 0 {
		c.fresh = DefaultFresh
	}
	if c.idle <= 0 {
		c.idle = DefaultIdleTimeout
	}
	if c.maxDur <= 0 {
		c.maxDur = DefaultMaxDuration
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.wait <= 0 {
		c.wait = DefaultIndexWait
	}
	if o.Remote != nil {
		c.hot = newHotState(o.HotCache)
	}
	for _, p := range o.Peers {
		u, err := url.Parse(p)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("distcache: peer %q: not an http(s) URL", p)
		}
		c.peers[strings.TrimRight(p, "/")] = true
	}
	if c.leaseTTL <= 0 {
		c.leaseTTL = DefaultLeaseTTL
	}
	c.leaseTTL = max(c.leaseTTL, 30*time.Millisecond) // renewed every third
	if c.node == "" {
		c.node = defaultNode()
	}
	if err := c.SetMirrors(o.Mirrors); err != nil {
		return nil, err
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// DefaultClient is the upstream client used when Options.Client is nil:
// no proxy from the environment, bounded connect, TLS and header waits, no
// overall timeout (long downloads are bounded by IdleTimeout and
// MaxDuration instead), no transparent decompression.
func DefaultClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   15 * time.Second,
			ResponseHeaderTimeout: 60 * time.Second,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   8,
			DisableCompression:    true,
			ForceAttemptHTTP2:     true,
		},
	}
}

// Store returns the cache's store.
func (c *Cache) Store() *Store { return c.store }

// Object is what Get fetches.
type Object struct {
	// Key is the store key (see the prefixes in api.go).
	Key string
	// Sources are absolute URLs tried in order (404 or error: next one).
	Sources []string
	// Volatile objects are revalidated upstream (If-None-Match,
	// If-Modified-Since) once older than Options.Fresh; others are
	// immutable once cached.
	Volatile bool
	// Expect, when set, is checked (size, BLAKE2B, SHA512) before the
	// object is kept.
	Expect *gentoo.Dist
}

// Get returns the object: from the store (Hit), by joining the download of
// it already running (Join), or by starting one (Miss). It returns once
// the object's length and headers are known (or the download failed, with
// ErrNotFound, ErrCorrupt or ErrUpstream and the reason); the body then
// streams as it arrives. The download runs on when ctx ends (other clients
// may want it) and stops when the Cache is closed. The caller must Close
// the Body.
func (c *Cache) Get(ctx context.Context, obj Object) (*Body, Outcome, error) {
	srcs := obj.Sources
	return c.get(ctx, obj, func(context.Context) []string { return srcs })
}

// Distfile returns the distfile name (key DistfilesPrefix+name): from the
// store, else from every mirror in turn (each with its own layout), else
// from the given origin URLs (fetch-through). The Verifier's entry, when
// there is one, is checked before the file is kept; otherwise only the
// size announced upstream. A cached file whose size differs from the
// Verifier's entry is fetched again.
func (c *Cache) Distfile(ctx context.Context, name string, origins ...string) (*Body, Outcome, error) {
	if err := CheckName(name); err != nil {
		return nil, "", err
	}
	obj := Object{Key: DistfilesPrefix + name}
	if err := c.waitIndexed(ctx); err != nil {
		return nil, "", err
	}
	if c.verifier != nil {
		if d, ok := c.verifier.Lookup(name); ok {
			obj.Expect = &d
		}
	}
	origins = append([]string(nil), origins...)
	return c.get(ctx, obj, func(ctx context.Context) []string {
		var out []string
		for _, m := range *c.mirrors.Load() {
			out = append(out, m.base+"/distfiles/"+escapePath(c.layoutOf(ctx, m).Path(name)))
		}
		return append(out, origins...)
	})
}

// CachedDistfile returns the Body of distfile name when a request for it
// would be answered at once from a small file in memory: the name is valid,
// the tree's DIST index is ready, no download of it is under way, and the
// copy in memory is still the stored file (see lookupSmall). It never
// blocks, starts a download or touches the disk beyond lookupSmall's
// periodic stat. ok false means: ask Distfile, which answers every case.
// The HTTP front uses it to answer hits without net/http.
func (c *Cache) CachedDistfile(name string) (b *Body, ok bool) {
	if c.remote != nil || CheckName(name) != nil {
		return nil, false
	}
	if w, isWaiter := c.verifier.(IndexWaiter); isWaiter && w.WaitIndexed(doneContext) != nil {
		return nil, false
	}
	obj := Object{Key: DistfilesPrefix + name}
	if c.verifier != nil {
		if d, found := c.verifier.Lookup(name); found {
			obj.Expect = &d
		}
	}
	if d, err := c.joinable(obj.Key); d != nil || err != nil {
		return nil, false
	}
	if b = c.lookupSmall(obj); b == nil {
		return nil, false
	}
	c.store.MarkServed(obj.Key)
	return b, true
}

// doneContext is an already cancelled context: WaitIndexed with it only
// tells whether the index is ready now.
var doneContext = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// waitIndexed waits for the Verifier's index when it is still being built.
func (c *Cache) waitIndexed(ctx context.Context) error {
	w, ok := c.verifier.(IndexWaiter)
	if !ok {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, c.wait)
	defer cancel()
	err := w.WaitIndexed(wctx)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("distcache: waiting for the DIST index: %w", context.Cause(ctx))
	case wctx.Err() != nil:
		return fmt.Errorf("%w: not built after %v: %v", ErrIndexNotReady, c.wait, err)
	}
	return fmt.Errorf("%w: %w", ErrIndexNotReady, err)
}

// TaintedKeys returns how many keys are tainted now (see Body.Tainted).
func (c *Cache) TaintedKeys() int { return c.taint.len() }

func (c *Cache) get(ctx context.Context, obj Object, sources func(context.Context) []string) (*Body, Outcome, error) {
	if err := CheckKey(obj.Key); err != nil {
		return nil, "", err
	}
	for try := 0; ; try++ {
		if d, err := c.joinable(obj.Key); d != nil || err != nil {
			if err != nil {
				return nil, "", err
			}
			return c.attach(ctx, d, Join)
		}
		// The store is read without the lock: hits are the common case.
		l, err := c.lookup(ctx, obj)
		if err != nil {
			return nil, "", err
		}
		if l.hit != nil {
			c.store.MarkServed(obj.Key)
			return l.hit, Hit, nil
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, "", errClosedCache
		}
		if d := c.active[obj.Key]; d != nil {
			c.mu.Unlock()
			return c.attach(ctx, d, Join)
		}
		if l.missing && try < 2 {
			// A download may have committed it since the lookup.
			if c.exists(ctx, obj.Key) {
				c.mu.Unlock()
				continue
			}
		}
		d := newDownload(c, obj, sources, l.stale, l.stale != nil)
		c.active[obj.Key] = d
		c.wg.Add(1)
		c.mu.Unlock()
		go d.run()
		return c.attach(ctx, d, Miss)
	}
}

var errClosedCache = errors.New("distcache: cache closed")

// joinable returns the download of key in progress, if any.
func (c *Cache) joinable(key string) (*download, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errClosedCache
	}
	return c.active[key], nil
}

// lookupResult is what the store says about an object.
type lookupResult struct {
	hit     *Body // serve this
	stale   *meta // a Volatile copy that needs revalidation
	missing bool  // no object
}

func (c *Cache) lookup(ctx context.Context, obj Object) (lookupResult, error) {
	if c.remote != nil {
		return c.lookupRemote(ctx, obj)
	}
	small := c.store.small
	if !obj.Volatile {
		if b := c.lookupSmall(obj); b != nil {
			return lookupResult{hit: b}, nil
		}
	}
	gen := small.generation()
	f, fi, err := c.store.Open(obj.Key)
	if errors.Is(err, fs.ErrNotExist) {
		return lookupResult{missing: true}, nil
	}
	if err != nil {
		return lookupResult{}, err
	}
	m, haveMeta := meta{}, false
	if obj.Volatile || !strings.HasPrefix(obj.Key, DistfilesPrefix) {
		m, haveMeta = c.store.readMeta(obj.Key)
	}
	switch {
	case obj.Expect != nil && fi.Size() != obj.Expect.Size:
		c.log.Warn("cached file has the wrong size for the Manifest; fetching it again",
			"key", obj.Key, "size", fi.Size(), "manifest", obj.Expect.Size)
		f.Close()
		return lookupResult{}, nil
	case obj.Volatile && (!haveMeta || c.now().Sub(m.Fetched) >= c.fresh):
		f.Close()
		return lookupResult{stale: &m}, nil
	}
	if !obj.Volatile && small.wants(obj.Key, fi.Size()) {
		if data, err := readSmall(f, fi.Size()); err == nil {
			f.Close()
			sf := &smallFile{key: obj.Key, data: data, fi: fi, id: identityOf(fi),
				fileTag: storedETag(nil, fi), checked: time.Now()}
			small.put(sf, gen)
			b := memoryBody(sf, m.ContentType, storedETag(obj.Expect, fi))
			b.taint = c.taint
			return lookupResult{hit: b}, nil
		}
	}
	b := storedBody(obj.Key, f, fi, m.ContentType, storedETag(obj.Expect, fi))
	b.taint = c.taint
	return lookupResult{hit: b}, nil
}

// lookupSmall serves obj from the small files in memory when it is
// there, still the file the store holds (checked at most every
// smallRecheck), and of the Manifest's size; nil otherwise (the store is
// asked then).
func (c *Cache) lookupSmall(obj Object) *Body {
	small := c.store.small
	now := time.Now()
	sf, fresh := small.get(obj.Key, now)
	if sf == nil {
		return nil
	}
	if !fresh {
		fi, err := c.store.Stat(obj.Key)
		if err != nil || identityOf(fi) != sf.id {
			small.drop(obj.Key)
			return nil
		}
		small.confirm(sf, now)
	}
	if obj.Expect != nil && sf.fi.Size() != obj.Expect.Size {
		return nil
	}
	etag := sf.fileTag
	if t := manifestETag(obj.Expect); t != "" {
		etag = t
	}
	b := memoryBody(sf, "", etag)
	b.taint = c.taint
	return b
}

// attach waits until d can serve (headers known, or resolved) and returns
// a Body on it.
func (c *Cache) attach(ctx context.Context, d *download, o Outcome) (*Body, Outcome, error) {
	select {
	case <-d.ready:
	case <-ctx.Done():
		return nil, "", fmt.Errorf("distcache: %s: waiting for upstream: %w", d.key, context.Cause(ctx))
	}
	d.mu.Lock()
	switch {
	case d.useStored:
		// Revalidated (304) or upstream failed: the stored copy serves.
		if o != Join {
			o = d.storedOutcome
		}
		d.mu.Unlock()
		return c.openStored(d.key, d.obj.Expect, o)
	case d.done && !d.committed:
		err := d.err
		d.mu.Unlock()
		return nil, "", err
	case d.file == nil:
		// Committed and released: the object is in the store.
		d.mu.Unlock()
		return c.openStored(d.key, d.obj.Expect, o)
	}
	b := &Body{key: d.key, d: d, file: d.file.acquire(), etag: d.etagLocked(), taint: c.taint}
	d.mu.Unlock()
	c.store.MarkServed(d.key)
	return b, o, nil
}

func (c *Cache) openStored(key string, expect *gentoo.Dist, o Outcome) (*Body, Outcome, error) {
	if c.remote != nil {
		in, err := c.remote.Stat(c.ctx, key)
		if err != nil {
			return nil, "", err
		}
		c.store.MarkServed(key)
		return remoteBody(c.remote, in, expect, c.taint), o, nil
	}
	f, fi, err := c.store.Open(key)
	if err != nil {
		return nil, "", err
	}
	var ct string
	if !strings.HasPrefix(key, DistfilesPrefix) {
		m, _ := c.store.readMeta(key)
		ct = m.ContentType
	}
	c.store.MarkServed(key)
	b := storedBody(key, f, fi, ct, storedETag(expect, fi))
	b.taint = c.taint
	return b, o, nil
}

// Close stops every download in progress (their clients see the transfer
// fail) and waits for them to end. It does not close the Store.
func (c *Cache) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	return nil
}

// escapePath percent-encodes each segment of a slash-separated path.
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// exists reports whether the complete object key is stored.
func (c *Cache) exists(ctx context.Context, key string) bool {
	if c.remote != nil {
		_, err := c.remote.Stat(ctx, key)
		return err == nil
	}
	_, err := c.store.Stat(key)
	return err == nil
}

// lookupRemote is lookup on the remote backend: a Stat, the body read
// with ranged reads when served.
func (c *Cache) lookupRemote(ctx context.Context, obj Object) (lookupResult, error) {
	if b := c.hotLookup(obj); b != nil {
		return lookupResult{hit: b}, nil
	}
	in, err := c.remote.Stat(ctx, obj.Key)
	if errors.Is(err, fs.ErrNotExist) {
		return lookupResult{missing: true}, nil
	}
	if err != nil {
		return lookupResult{}, fmt.Errorf("%w: %s: object storage: %w", ErrUpstream, obj.Key, err)
	}
	switch {
	case obj.Expect != nil && in.Size != obj.Expect.Size:
		c.log.Warn("stored object has the wrong size for the Manifest; fetching it again",
			"key", obj.Key, "size", in.Size, "manifest", obj.Expect.Size)
		return lookupResult{}, nil
	case obj.Volatile:
		m, ok := c.store.readMeta(obj.Key)
		if !ok || m.Fetched.Before(in.Stored) {
			// Another node stored it (or this one forgot): what the
			// object says.
			m = meta{ETag: in.ETag, LastModified: in.LastModified, ContentType: in.ContentType, Fetched: in.Stored}
		}
		if c.now().Sub(m.Fetched) >= c.fresh {
			return lookupResult{stale: &m}, nil
		}
	}
	c.hotFill(obj, in)
	return lookupResult{hit: remoteBody(c.remote, in, obj.Expect, c.taint)}, nil
}

// defaultNode names this process in leases.
func defaultNode() string {
	host, _ := os.Hostname()
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// SetMirrors replaces the upstream mirrors (a reload): downloads already
// running keep their sources; a mirror listed before keeps its layout.
func (c *Cache) SetMirrors(urls []string) error {
	old := map[string]*mirror{}
	if p := c.mirrors.Load(); p != nil {
		for _, m := range *p {
			old[m.base] = m
		}
	}
	var ms []*mirror
	for _, m := range urls {
		u, err := url.Parse(m)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("distcache: mirror %q: not an http(s) URL", m)
		}
		base := strings.TrimRight(m, "/")
		if o := old[base]; o != nil {
			ms = append(ms, o)
		} else {
			ms = append(ms, &mirror{base: base})
		}
	}
	c.mirrors.Store(&ms)
	return nil
}
