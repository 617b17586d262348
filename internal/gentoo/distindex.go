package gentoo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// distRec is the compact form of a Dist kept in the index.
type distRec struct {
	name    string // the canonical copy of the name, shared with pkgs
	size    int64
	b2, sha [64]byte
	has     uint8 // hasB2 | hasSHA
}

const (
	hasB2 = 1 << iota
	hasSHA
)

func newDistRec(d Dist) distRec {
	// Clone: the parsed name points into its whole Manifest line.
	r := distRec{name: strings.Clone(d.Name), size: d.Size}
	if len(d.BLAKE2B) == 64 {
		copy(r.b2[:], d.BLAKE2B)
		r.has |= hasB2
	}
	if len(d.SHA512) == 64 {
		copy(r.sha[:], d.SHA512)
		r.has |= hasSHA
	}
	return r
}

func (r *distRec) dist(name string) Dist {
	d := Dist{Name: name, Size: r.size}
	if r.has&hasB2 != 0 {
		d.BLAKE2B = slices.Clone(r.b2[:])
	}
	if r.has&hasSHA != 0 {
		d.SHA512 = slices.Clone(r.sha[:])
	}
	return d
}

// DistIndex maps every distfile name of an ebuild tree to its DIST entry.
// It is immutable once built and safe for concurrent use.
type DistIndex struct {
	root  string
	dists map[string]distRec
	pkgs  map[string][]string // "cat/pkg" -> names in Manifest order
	stats IndexStats
}

// IndexStats describes one build of a DistIndex.
type IndexStats struct {
	// Packages is the number of package Manifests read.
	Packages int
	// Dists is the number of distinct distfile names.
	Dists int
	// Conflicts counts names whose DIST entries disagree between packages
	// (the first one read is kept).
	Conflicts int
	// BadLines counts malformed Manifest lines that were skipped.
	BadLines int
	// Unreadable counts package Manifests that could not be read.
	Unreadable int
	// Duration is how long the build took.
	Duration time.Duration
}

// IndexOptions tune BuildDistIndex.
type IndexOptions struct {
	// Workers bounds the Manifests read at once (default 4×GOMAXPROCS,
	// at least 8: the work is mostly waiting for the disk).
	Workers int
	// Log receives warnings about unreadable Manifests (nil: discarded).
	Log *slog.Logger
}

// notCategories are top-level directories of a repository that never hold
// packages; they are skipped when profiles/categories is missing.
var notCategories = map[string]bool{
	"metadata": true, "profiles": true, "eclass": true, "licenses": true,
	"distfiles": true, "packages": true, "local": true, "scripts": true,
}

// BuildDistIndex reads the package Manifests (root/CAT/PKG/Manifest) of the
// ebuild repository at root. Categories come from profiles/categories when
// it exists, else from the top-level directories. Manifests are read in
// parallel with a bound; unreadable ones are counted and skipped. The error
// is for an unreadable root or a cancelled ctx.
func BuildDistIndex(ctx context.Context, root string, opt IndexOptions) (*DistIndex, error) {
	start := time.Now()
	workers := opt.Workers
	if workers <= 0 {
		workers = max(8, 4*runtime.GOMAXPROCS(0))
	}
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cats, err := categories(root)
	if err != nil {
		return nil, err
	}

	type result struct {
		atom  string
		dists []Dist
		bad   int
		err   error
	}
	results := make(chan result, 64)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)

	// The collector runs beside the workers so no result is buffered
	// beyond the channel.
	idx := &DistIndex{root: root, dists: make(map[string]distRec, 1<<16), pkgs: make(map[string][]string, 1<<14)}
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for r := range results {
			if r.err != nil {
				idx.stats.Unreadable++
				log.Warn("dist index: manifest unreadable", "package", r.atom, "err", r.err)
				continue
			}
			idx.stats.Packages++
			idx.stats.BadLines += r.bad
			names := make([]string, 0, len(r.dists))
			for _, d := range r.dists {
				rec := newDistRec(d)
				if old, ok := idx.dists[d.Name]; ok {
					if old.size != rec.size || old.has != rec.has || old.b2 != rec.b2 || old.sha != rec.sha {
						idx.stats.Conflicts++
						log.Warn("dist index: conflicting DIST entries, keeping the first", "name", d.Name, "package", r.atom)
					}
					names = append(names, old.name)
					continue
				}
				idx.dists[rec.name] = rec
				names = append(names, rec.name)
			}
			idx.pkgs[r.atom] = names
		}
	}()

	var walkErr error
	for _, cat := range cats {
		if gctx.Err() != nil {
			break
		}
		ents, err := os.ReadDir(filepath.Join(root, cat))
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				log.Warn("dist index: category unreadable", "category", cat, "err", err)
			}
			continue
		}
		for _, e := range ents {
			if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			atom := cat + "/" + e.Name()
			g.Go(func() error {
				if gctx.Err() != nil {
					return gctx.Err()
				}
				m, err := readPackageManifest(filepath.Join(root, cat, e.Name()))
				if errors.Is(err, fs.ErrNotExist) {
					return nil // a package without distfiles (or no package)
				}
				r := result{atom: atom, err: err}
				if m != nil {
					r.dists = m.Dists()
					r.bad = m.BadCount
				}
				select {
				case results <- r:
					return nil
				case <-gctx.Done():
					return gctx.Err()
				}
			})
		}
	}
	walkErr = g.Wait()
	close(results)
	<-collected
	if walkErr == nil {
		walkErr = ctx.Err()
	}
	if walkErr != nil {
		return nil, fmt.Errorf("dist index %s: %w", root, walkErr)
	}
	idx.stats.Dists = len(idx.dists)
	idx.stats.Duration = time.Since(start)
	return idx, nil
}

// readPackageManifest reads dir/Manifest, or dir/Manifest.gz when only the
// compressed one exists.
func readPackageManifest(dir string) (*Manifest, error) {
	m, err := ReadManifestFile(filepath.Join(dir, "Manifest"))
	if errors.Is(err, fs.ErrNotExist) {
		return ReadManifestFile(filepath.Join(dir, "Manifest.gz"))
	}
	return m, err
}

// categories lists the category directories of the repository at root.
func categories(root string) ([]string, error) {
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("dist index: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("dist index: %s is not a directory", root)
	}
	if f, err := os.Open(filepath.Join(root, "profiles", "categories")); err == nil {
		defer f.Close()
		var cats []string
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			c := strings.TrimSpace(sc.Text())
			if c == "" || strings.HasPrefix(c, "#") || !validSegment(c) {
				continue
			}
			cats = append(cats, c)
		}
		if sc.Err() == nil && len(cats) > 0 {
			return cats, nil
		}
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("dist index: %w", err)
	}
	var cats []string
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() && !strings.HasPrefix(n, ".") && !notCategories[n] {
			cats = append(cats, n)
		}
	}
	return cats, nil
}

func validSegment(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\\\x00")
}

// Root is the tree directory the index was built from.
func (x *DistIndex) Root() string { return x.root }

// Stats describes the build.
func (x *DistIndex) Stats() IndexStats { return x.stats }

// Len is the number of distinct distfile names.
func (x *DistIndex) Len() int { return len(x.dists) }

// Lookup returns the DIST entry of a distfile name.
func (x *DistIndex) Lookup(name string) (Dist, bool) {
	if x == nil {
		return Dist{}, false
	}
	r, ok := x.dists[name]
	if !ok {
		return Dist{}, false
	}
	return r.dist(name), true
}

// Has reports whether some package references name.
func (x *DistIndex) Has(name string) bool {
	if x == nil {
		return false
	}
	_, ok := x.dists[name]
	return ok
}

// Names returns every distfile name, sorted.
func (x *DistIndex) Names() []string {
	out := make([]string, 0, len(x.dists))
	for n := range x.dists {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// ErrNoPackage is returned by ForPackage for an atom the tree does not have
// (or that has no Manifest).
var ErrNoPackage = errors.New("no such package in the tree")

// ForPackage returns the DIST entries of the package atom "cat/pkg" (no
// version or operators), in Manifest order. A package without distfiles
// returns an empty slice.
func (x *DistIndex) ForPackage(atom string) ([]Dist, error) {
	cat, pkg, ok := strings.Cut(atom, "/")
	if !ok || !validSegment(cat) || !validSegment(pkg) {
		return nil, fmt.Errorf("package %q: want CATEGORY/PACKAGE", atom)
	}
	names, ok := x.pkgs[atom]
	if !ok {
		// A package directory without a Manifest has no distfiles.
		if fi, err := os.Stat(filepath.Join(x.root, cat, pkg)); err == nil && fi.IsDir() {
			return []Dist{}, nil
		}
		return nil, fmt.Errorf("package %s: %w", atom, ErrNoPackage)
	}
	out := make([]Dist, 0, len(names))
	for _, n := range names {
		if d, ok := x.Lookup(n); ok {
			out = append(out, d)
		}
	}
	return out, nil
}

// TreeIndex keeps a DistIndex of the tree at a path that may change under
// it: a symlink swapped atomically to a new snapshot (lanmirror's
// DATA/tree/current), or a plain directory updated in place by emerge
// --sync. It rebuilds the index in the background when the tree changes
// and answers lookups from the newest complete index meanwhile.
//
// Before the first build has finished (or when the tree cannot be read)
// Lookup reports every name as unknown; starting the server never waits
// for the index, but the distfiles cache waits for it (WaitIndexed)
// before it serves a distfile.
type TreeIndex struct {
	path string
	opt  TreeIndexOptions

	cur       atomic.Pointer[DistIndex]
	ready     chan struct{}
	once      sync.Once
	built     chan struct{} // closed at the first successful build
	builtOnce sync.Once
	lastErr   atomic.Pointer[error] // of the last failed build, nil after a success

	mu  sync.Mutex // serializes Refresh
	key treeKey
	at  time.Time // when key was last built
}

// TreeIndexOptions tune a TreeIndex.
type TreeIndexOptions struct {
	// CheckInterval is how often Run looks for a change of the tree
	// (default 10 seconds). The check is a few stat calls.
	CheckInterval time.Duration
	// RebuildInterval forces a rebuild of a tree that has no timestamp
	// file to watch (default 1 hour).
	RebuildInterval time.Duration
	// Index options for each build.
	Index IndexOptions
	// Log receives build and error messages (nil: discarded).
	Log *slog.Logger
}

// treeKey identifies one state of the tree.
type treeKey struct {
	target string    // resolved path
	stamp  time.Time // mtime of the timestamp file, zero when none
	size   int64
	found  bool // a timestamp file exists
}

// timestampFiles are the files whose change marks a new tree state:
// rsync trees carry timestamp.chk, git trees timestamp.commit.
var timestampFiles = []string{"metadata/timestamp.chk", "metadata/timestamp.commit", "metadata/timestamp"}

// NewTreeIndex returns a TreeIndex for the tree at path. Nothing is read
// until Run or Refresh.
func NewTreeIndex(path string, opt TreeIndexOptions) *TreeIndex {
	if opt.CheckInterval <= 0 {
		opt.CheckInterval = 10 * time.Second
	}
	if opt.RebuildInterval <= 0 {
		opt.RebuildInterval = time.Hour
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Index.Log == nil {
		opt.Index.Log = opt.Log
	}
	return &TreeIndex{path: path, opt: opt, ready: make(chan struct{}), built: make(chan struct{})}
}

// Path is the tree path the index follows.
func (t *TreeIndex) Path() string { return t.path }

// Current returns the newest complete index, nil before the first build.
func (t *TreeIndex) Current() *DistIndex { return t.cur.Load() }

// Lookup answers from the newest complete index; unknown before the first
// build has finished.
func (t *TreeIndex) Lookup(name string) (Dist, bool) {
	return t.cur.Load().Lookup(name)
}

// Ready is closed when the first build has finished (successfully or not).
func (t *TreeIndex) Ready() <-chan struct{} { return t.ready }

// Wait blocks until the first build has finished and returns the index
// (nil if it failed).
func (t *TreeIndex) Wait(ctx context.Context) (*DistIndex, error) {
	select {
	case <-t.ready:
		if x := t.cur.Load(); x != nil {
			return x, nil
		}
		return nil, fmt.Errorf("dist index %s: no index could be built", t.path)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// WaitIndexed blocks until an index exists (nil). While the tree does not
// exist (serve --tree-upstream before its first pull is published) it
// keeps waiting, since Run looks for it every second until then; when a
// build failed otherwise (the tree cannot be read) and none succeeded
// since, it returns that failure at once. When ctx ends first it returns
// ctx's error, with the last build failure if any. The distfiles cache
// waits for it (distcache.IndexWaiter), so that no distfile the tree
// names is fetched unverified while the index is being built.
func (t *TreeIndex) WaitIndexed(ctx context.Context) error {
	for {
		if t.cur.Load() != nil {
			return nil
		}
		p := t.lastErr.Load()
		select {
		case <-t.ready:
			if p != nil && !errors.Is(*p, fs.ErrNotExist) && t.cur.Load() == nil {
				return fmt.Errorf("dist index of %s could not be built: %w", t.path, *p)
			}
		default:
		}
		select {
		case <-t.built:
			return nil
		case <-ctx.Done():
			if p := t.lastErr.Load(); p != nil {
				return fmt.Errorf("%w (dist index of %s: %v)", ctx.Err(), t.path, *p)
			}
			return ctx.Err()
		case <-t.ready:
			if p == nil {
				continue // the first build just ended
			}
			select {
			case <-t.built:
				return nil
			case <-ctx.Done():
				return fmt.Errorf("%w (dist index of %s: %v)", ctx.Err(), t.path, *p)
			}
		}
	}
}

// currentKey stats the tree.
func (t *TreeIndex) currentKey() (treeKey, error) {
	target, err := filepath.EvalSymlinks(t.path)
	if err != nil {
		return treeKey{}, fmt.Errorf("dist index: %w", err)
	}
	k := treeKey{target: target}
	for _, f := range timestampFiles {
		if fi, err := os.Stat(filepath.Join(target, f)); err == nil {
			k.stamp, k.size, k.found = fi.ModTime(), fi.Size(), true
			break
		}
	}
	return k, nil
}

// Refresh rebuilds the index now if the tree changed since the last build
// (or none succeeded yet) and reports whether it did. On error the previous
// index stays in use.
func (t *TreeIndex) Refresh(ctx context.Context) (rebuilt bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	defer func() {
		if err != nil && t.cur.Load() == nil {
			t.lastErr.Store(&err)
		}
		t.once.Do(func() { close(t.ready) })
	}()
	k, err := t.currentKey()
	if err != nil {
		return false, err
	}
	stale := !k.found && time.Since(t.at) >= t.opt.RebuildInterval
	if t.cur.Load() != nil && k == t.key && !stale {
		return false, nil
	}
	x, err := BuildDistIndex(ctx, k.target, t.opt.Index)
	if err != nil {
		return false, err
	}
	// The tree may have been swapped during the build: the index then
	// describes the old target, and the next check builds the new one.
	t.key, t.at = k, time.Now()
	t.cur.Store(x)
	t.lastErr.Store(nil)
	t.builtOnce.Do(func() { close(t.built) })
	s := x.Stats()
	t.opt.Log.Info("dist index built", "tree", k.target, "packages", s.Packages, "distfiles", s.Dists,
		"conflicts", s.Conflicts, "bad_lines", s.BadLines, "unreadable", s.Unreadable, "took", s.Duration.Round(time.Millisecond))
	return true, nil
}

// Run builds the index, then checks the tree every CheckInterval and
// rebuilds it on change, until ctx is cancelled.
func (t *TreeIndex) Run(ctx context.Context) {
	tick := time.NewTicker(t.opt.CheckInterval)
	defer tick.Stop()
	lastErr := ""
	for {
		_, err := t.Refresh(ctx)
		if err != nil && t.cur.Load() == nil && ctx.Err() == nil {
			// No index yet (the first pull of --tree-upstream may be
			// running, distfile requests wait): look again soon.
			tick.Reset(min(time.Second, t.opt.CheckInterval))
		} else {
			tick.Reset(t.opt.CheckInterval)
		}
		switch {
		case err != nil && ctx.Err() == nil && err.Error() != lastErr:
			lastErr = err.Error()
			t.opt.Log.Warn("dist index: tree not indexed; distfile requests wait for it (then 503)", "tree", t.path, "err", err)
		case err == nil:
			lastErr = ""
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
