// Package flist builds rsync file lists: it scans a module through an
// *os.Root (symlinks are listed, never followed), keeps one shared scan per
// module (kept fresh by directory watches, or directory mtimes where
// inotify is unavailable), selects the entries a client asked for, sorts
// them in the order the negotiated protocol expects and encodes them for
// the wire; Prepare shares whole encoded lists among identical requests.
package flist

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lanmirror/lanmirror/internal/rsync/filter"
)

// Unix file type bits as sent on the wire.
const (
	ModeTypeMask = 0o170000
	ModeReg      = 0o100000
	ModeDir      = 0o040000
	ModeLink     = 0o120000
)

// File is one file list entry.
type File struct {
	Name       string // the name as sent in the file list, "/"-separated
	Path       string // module-relative path to open through the Root ("." for the root)
	Mode       uint32 // unix mode including type bits
	Size       int64
	ModTime    int64
	ModNsec    int32
	UID, GID   uint32
	LinkTarget string
	TopDir     bool // a top-level directory of the transfer (XMIT_TOP_DIR)
	Implied    bool // a directory implied by a -R path (sent without contents)
}

// OwnerOf returns the uid and gid of a file (0, 0 where unknown).
func OwnerOf(fi fs.FileInfo) (uid, gid uint32) { return ownerOf(fi) }

// IsDir reports whether f is a directory.
func (f *File) IsDir() bool { return f.Mode&ModeTypeMask == ModeDir }

// IsRegular reports whether f is a regular file.
func (f *File) IsRegular() bool { return f.Mode&ModeTypeMask == ModeReg }

// IsLink reports whether f is a symbolic link.
func (f *File) IsLink() bool { return f.Mode&ModeTypeMask == ModeLink }

// Request says what a client asked for.
type Request struct {
	Paths     []string // source args with the module name stripped: "", ".", "dir/", "dir", "a/file"
	Recursive bool
	Links     bool
	Rules     *filter.Rules
	Protocol  int
}

// List is a per-client view onto a scan, in the protocol's sort order.
type List struct {
	Files []*File
}

// minRecheck is the minimal interval between freshness checks of a scan.
const minRecheck = 2 * time.Second

// Cache holds the shared scan of one module.
type Cache struct {
	root     *os.Root
	excludes *filter.Rules
	log      *slog.Logger

	// Recheck is the minimal interval between freshness checks of the
	// shared scan (directory mtimes are compared); set before first use.
	Recheck time.Duration

	// Watch asks for inotify watches on the scanned directories (Linux),
	// so that a freshness check costs one read instead of one lstat per
	// directory; NewCache sets it. Turn it off before first use for a
	// one-shot cache. Close releases the watches.
	Watch bool

	mu      sync.Mutex
	snap    *snapshot
	checked time.Time
	// watch, when set, reports changes to the scanned directories
	// (inotify); scanW is the one being filled by a running scan.
	watch   *watchHolder
	scanW   *watcher
	scanWMu sync.Mutex // scanW during a scan's parallel walks

	prepared preparedSet // encoded lists shared by identical requests
}

// snapshot is an immutable scan of the whole module.
type snapshot struct {
	files []*File             // module-relative names, in protocol 29+ order, "." first
	index map[string]int      // module-relative path -> position in files
	dirs  map[string]dirStamp // directory path -> mtime at scan time
	// watched: a directory watcher guards this scan, so that any change
	// to a file (even in place) replaces it; only then are -c sums kept.
	watched bool
	sums    sync.Map // kind + "\x00" + path -> []byte
}

type dirStamp struct {
	sec  int64
	nsec int32
}

// NewCache returns the shared file list cache of a module. excludes are
// server-side exclude patterns (rsyncd.conf "exclude"), module-relative;
// excluded paths are invisible to clients.
func NewCache(root *os.Root, excludes []string, log *slog.Logger) *Cache {
	if log == nil {
		log = slog.Default()
	}
	rules := make([]string, 0, len(excludes))
	for _, e := range excludes {
		if e = strings.TrimSpace(e); e != "" {
			rules = append(rules, "- "+e)
		}
	}
	r, err := filter.Parse(rules, 31)
	if err != nil {
		log.Warn("rsync module excludes ignored", "err", err)
		r = nil
	}
	c := &Cache{root: root, excludes: r, log: log, Recheck: minRecheck, Watch: true, watch: &watchHolder{}}
	// Stop watching once the cache is dropped (e.g. a snapshot switch).
	runtime.AddCleanup(c, func(h *watchHolder) { h.set(nil) }, c.watch)
	return c
}

// Close releases the directory watches (the cache keeps working and
// checks directory mtimes instead). Without Close they are released when
// the cache is garbage collected.
func (c *Cache) Close() {
	c.mu.Lock()
	c.Watch = false
	c.watch.set(nil)
	c.mu.Unlock()
}

// watchHolder owns the current watcher of a Cache.
type watchHolder struct {
	mu sync.Mutex
	w  *watcher
}

// set replaces the watcher, closing the previous one.
func (h *watchHolder) set(w *watcher) {
	h.mu.Lock()
	old := h.w
	h.w = w
	h.mu.Unlock()
	if old != nil {
		old.close()
	}
}

// get returns the current watcher (nil: none).
func (h *watchHolder) get() *watcher {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.w
}

// watchRecheck is how long a scan whose watcher saw no change is trusted
// before the directories are checked again anyway (a safety net: the
// check then costs one lstat per directory, once, not per client).
const watchRecheck = time.Minute

// watchDir adds an inotify watch on a directory of the running scan; on
// any failure (no inotify, watch limit) the scan goes without watcher.
// The parallel subtree walks of one scan call it concurrently (scanWMu).
func (c *Cache) watchDir(rel string) {
	c.scanWMu.Lock()
	defer c.scanWMu.Unlock()
	if c.scanW == nil {
		return
	}
	if err := c.scanW.add(filepath.Join(c.root.Name(), filepath.FromSlash(rel))); err != nil {
		c.log.Info("rsync module: directory watches unavailable (raise fs.inotify.max_user_watches?), checking directory mtimes instead", "err", err)
		c.scanW.close()
		c.scanW = nil
	}
}

// Warm makes sure the shared scan of the whole module is ready (scanning
// it if needed), so that the next client does not wait for it.
func (c *Cache) Warm(ctx context.Context) error {
	_, err := c.full(ctx)
	return err
}

// Scanned reports whether the cache holds a scan of the whole module
// (possibly stale: the next request checks its freshness).
func (c *Cache) Scanned() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snap != nil
}

// Invalidate forces a rescan on the next request.
func (c *Cache) Invalidate() {
	c.mu.Lock()
	c.snap = nil
	c.watch.set(nil)
	c.mu.Unlock()
}

// Excluded reports whether a module-relative path is hidden by the
// server-side excludes (also for paths below an excluded directory).
func (c *Cache) Excluded(rel string, isDir bool) bool {
	if c.excludes == nil || rel == "." || rel == "" {
		return false
	}
	parts := strings.Split(rel, "/")
	for i := 1; i < len(parts); i++ {
		if c.excludes.Excluded(strings.Join(parts[:i], "/"), true) {
			return true
		}
	}
	return c.excludes.Excluded(rel, isDir)
}

// fileOf builds an entry from Lstat information. On Linux the scan
// builds entries with fileOfStat (readdir_linux.go) from raw stat data
// instead: change both together (TestReadDirSameAsRoot compares them).
func (c *Cache) fileOf(rel string, fi fs.FileInfo) (*File, error) {
	f := &File{Path: rel, Name: rel}
	m := fi.Mode()
	perm := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		perm |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		perm |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		perm |= 0o1000
	}
	switch {
	case m.IsRegular():
		f.Mode = ModeReg | perm
		f.Size = fi.Size()
	case m.IsDir():
		f.Mode = ModeDir | perm
		f.Size = fi.Size() // stock rsync sends st_size for directories too
	case m&fs.ModeSymlink != 0:
		f.Mode = ModeLink | perm
		t, err := c.root.Readlink(rel)
		if err != nil {
			return nil, fmt.Errorf("readlink %s: %w", rel, err)
		}
		f.LinkTarget = t
		f.Size = int64(len(t))
	default:
		return nil, nil // devices, fifos, sockets are not served
	}
	mt := fi.ModTime()
	f.ModTime = mt.Unix()
	f.ModNsec = int32(mt.Nanosecond())
	f.UID, f.GID = ownerOf(fi)
	return f, nil
}

// scanTree walks the directory rel (module-relative) recursively and
// returns its entries (rel itself first) in protocol 29+ order.
func (c *Cache) scanTree(ctx context.Context, rel string, dirs map[string]dirStamp) ([]*File, error) {
	fi, err := c.root.Lstat(rel)
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", rel, err)
	}
	top, err := c.fileOf(rel, fi)
	if err != nil || top == nil {
		return nil, err
	}
	out := []*File{top}
	if !top.IsDir() {
		return out, nil
	}
	if dirs != nil {
		dirs[rel] = dirStamp{top.ModTime, top.ModNsec}
	}
	rootfd, closeRoot := c.openRootFD()
	defer closeRoot()
	err = c.walkDir(ctx, rel, &out, dirs, scanWorkers(), rootfd)
	return out, err
}

// scanWorkers is how many subtrees of the scanned directory are walked
// at once: the client waits for the whole list, so the scan's wall time
// is the first sync's latency, and directory reads and lstat calls run
// in parallel in the kernel.
func scanWorkers() int { return min(runtime.GOMAXPROCS(0), 4) }

// walkDir appends the contents of dir: files first, then each
// subdirectory followed by its own contents (rsync 29+ order). With
// workers > 1 the subdirectories are walked by that many goroutines
// (each subtree sequentially), and their results appended in order.
// rootfd is a descriptor of the module root for readDir (-1: none).
func (c *Cache) walkDir(ctx context.Context, dir string, out *[]*File, dirs map[string]dirStamp, workers, rootfd int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dirs != nil {
		c.watchDir(dir) // before reading, so no change goes unseen
	}
	files, subdirs, err := c.readDir(dir, rootfd)
	if err != nil {
		return err
	}
	byName := func(a, b *File) int { return strings.Compare(path.Base(a.Path), path.Base(b.Path)) }
	slices.SortFunc(files, byName)
	slices.SortFunc(subdirs, func(a, b *File) int { return compareDirNames(path.Base(a.Path), path.Base(b.Path)) })
	*out = append(*out, files...)
	if workers > 1 && len(subdirs) > 1 {
		return c.walkSubdirs(ctx, subdirs, out, dirs, workers, rootfd)
	}
	for _, s := range subdirs {
		*out = append(*out, s)
		if dirs != nil {
			dirs[s.Path] = dirStamp{s.ModTime, s.ModNsec}
		}
		if err := c.walkDir(ctx, s.Path, out, dirs, 1, rootfd); err != nil {
			return err
		}
	}
	return nil
}

// readDirRoot reads the entries of dir through the Root (the portable
// way), leaving out what is excluded or not served, split into
// directories and the rest. A directory that cannot be opened or read
// is logged and listed with what could be read; an entry whose lstat
// fails for another reason than vanishing fails the scan.
func (c *Cache) readDirRoot(dir string) (files, subdirs []*File, err error) {
	d, err := c.root.Open(dir)
	if err != nil {
		c.log.Warn("rsync: cannot open directory", "dir", dir, "err", err)
		return nil, nil, nil
	}
	ents, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		c.log.Warn("rsync: cannot read directory", "dir", dir, "err", err)
	}
	for _, e := range ents {
		rel := e.Name()
		if dir != "." {
			rel = dir + "/" + e.Name()
		}
		fi, err := e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, nil, fmt.Errorf("stat %s: %w", rel, err)
		}
		f, err := c.fileOf(rel, fi)
		if err != nil {
			c.log.Warn("rsync: skipping entry", "path", rel, "err", err)
			continue
		}
		files, subdirs = c.sortEntry(f, files, subdirs)
	}
	return files, subdirs, nil
}

// sortEntry appends f (unless nil or excluded) to subdirs or files.
func (c *Cache) sortEntry(f *File, files, subdirs []*File) ([]*File, []*File) {
	switch {
	case f == nil || c.Excluded(f.Path, f.IsDir()):
	case f.IsDir():
		subdirs = append(subdirs, f)
	default:
		files = append(files, f)
	}
	return files, subdirs
}

// compareDirNames compares two directory names as if each ended in "/"
// (without building those strings).
func compareDirNames(a, b string) int {
	n := min(len(a), len(b))
	if c := strings.Compare(a[:n], b[:n]); c != 0 {
		return c
	}
	switch {
	case len(a) == len(b):
		return 0
	case len(a) == n: // a's "/" against b's next byte; then a is shorter
		if c := cmpByte('/', b[n]); c != 0 {
			return c
		}
		return -1
	default:
		if c := cmpByte(a[n], '/'); c != 0 {
			return c
		}
		return 1
	}
}

func cmpByte(x, y byte) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// walkSubdirs walks the subdirectories subdirs (sorted) with workers
// goroutines and appends each directory and its contents to out in
// order, as the sequential walk does; the first error in that order is
// returned.
func (c *Cache) walkSubdirs(ctx context.Context, subdirs []*File, out *[]*File, dirs map[string]dirStamp, workers, rootfd int) error {
	type result struct {
		files []*File
		dirs  map[string]dirStamp
		err   error
	}
	res := make([]result, len(subdirs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, len(subdirs)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(subdirs) {
					return
				}
				r := &res[i]
				if dirs != nil {
					r.dirs = map[string]dirStamp{}
				}
				r.err = c.walkDir(ctx, subdirs[i].Path, &r.files, r.dirs, 1, rootfd)
			}
		})
	}
	wg.Wait()
	for i, s := range subdirs {
		*out = append(*out, s)
		if dirs != nil {
			dirs[s.Path] = dirStamp{s.ModTime, s.ModNsec}
			maps.Copy(dirs, res[i].dirs)
		}
		if res[i].err != nil {
			return res[i].err
		}
		*out = append(*out, res[i].files...)
	}
	return nil
}

// fresh reports whether every directory of s still has its scanned mtime.
//
// Only directory mtimes are read here, never data, so the check uses
// plain lstat calls below the root's path (one system call each; going
// through the Root costs several per path): a symlink planted in the
// tree could at worst trigger a needless rescan, which goes through the
// Root again.
func (c *Cache) fresh(s *snapshot) bool {
	base := c.root.Name()
	for d, st := range s.dirs {
		fi, err := os.Lstat(filepath.Join(base, filepath.FromSlash(d)))
		if err != nil || !fi.IsDir() {
			return false
		}
		mt := fi.ModTime()
		if mt.Unix() != st.sec || int32(mt.Nanosecond()) != st.nsec {
			return false
		}
	}
	return true
}

// full returns the shared scan of the whole module, rescanning if the
// tree changed (checked at most every minRecheck) or after Invalidate.
func (c *Cache) full(ctx context.Context) (*snapshot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.snap != nil {
		since := time.Since(c.checked)
		w := c.watch.get()
		switch {
		case since < c.Recheck:
			return c.snap, nil
		case w != nil && !w.changed() && since < watchRecheck:
			return c.snap, nil // nothing changed: no directory to check
		case w != nil && w.changed():
			// Changed: rescan below.
		case c.fresh(c.snap):
			c.checked = time.Now()
			return c.snap, nil
		}
	}
	dirs := map[string]dirStamp{}
	if c.Watch {
		if ok, why := watchable(c.root.Name()); ok {
			c.scanW, _ = newWatcher()
		} else {
			c.log.Debug("rsync module: no directory watch, checking directory mtimes", "why", why)
		}
	}
	files, err := c.scanTree(ctx, ".", dirs)
	w := c.scanW
	c.scanW = nil
	if err != nil {
		if w != nil {
			w.close()
		}
		return nil, fmt.Errorf("scanning module: %w", err)
	}
	c.watch.set(w)
	s := &snapshot{files: files, index: make(map[string]int, len(files)), dirs: dirs, watched: w != nil}
	for i, f := range files {
		s.index[f.Path] = i
	}
	c.snap, c.checked = s, time.Now()
	c.log.Debug("rsync module scanned", "files", len(files))
	return s, nil
}

// cleanArg turns a client source argument into a module-relative path
// and whether it asked for the directory contents (trailing "/" or ".").
func cleanArg(p string) (rel string, contents bool, err error) {
	contents = p == "" || strings.HasSuffix(p, "/") || p == "." || strings.HasSuffix(p, "/.")
	p = strings.TrimLeft(p, "/")
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return "", false, fmt.Errorf("path %q escapes the module", p)
		}
	}
	rel = path.Clean("/" + p)[1:]
	if rel == "" {
		rel = "."
	}
	return rel, contents, nil
}

// Select returns the entries a client asked for, with names relative to
// the transfer root as stock rsync sends them without -R. The whole
// module comes from the shared scan; single files are answered with one
// Lstat and subdirectories by walking only that subtree.
func (c *Cache) Select(ctx context.Context, req Request) (*List, error) {
	paths := req.Paths
	if len(paths) == 0 {
		paths = []string{"."}
	}
	var out []*File
	for _, p := range paths {
		rel, contents, err := cleanArg(p)
		if err != nil {
			return nil, err
		}
		fs, err := c.selectOne(ctx, rel, contents, req)
		if err != nil {
			return nil, err
		}
		out = append(out, fs...)
	}
	// The scan is already in protocol 29+ order; sorting is needed below
	// 29 or when several paths were merged (checking is much cheaper).
	cmp := Compare
	if req.Protocol < 29 {
		cmp = func(a, b *File) int { return strings.Compare(a.Name, b.Name) }
	}
	if !slices.IsSortedFunc(out, cmp) {
		slices.SortStableFunc(out, cmp)
	}
	out = dedupe(out)
	return &List{Files: out}, nil
}

func dedupe(fs []*File) []*File {
	if len(fs) < 2 {
		return fs
	}
	w := 1
	for i := 1; i < len(fs); i++ {
		if fs[i].Name != fs[w-1].Name {
			fs[w] = fs[i]
			w++
		}
	}
	return fs[:w]
}

func (c *Cache) selectOne(ctx context.Context, rel string, contents bool, req Request) ([]*File, error) {
	fi, err := c.root.Lstat(rel)
	if err != nil || c.Excluded(rel, err == nil && fi.IsDir()) {
		return nil, fmt.Errorf("link_stat %q failed: %w", rel, fs.ErrNotExist)
	}
	if !fi.IsDir() || (!req.Recursive && !contents) {
		f, err := c.fileOf(rel, fi)
		if err != nil {
			return nil, err
		}
		if f == nil {
			return nil, nil
		}
		g := *f
		g.Name = path.Base(rel)
		if rel == "." {
			g.Name = "."
		}
		// A directory named without a trailing slash and without -r is
		// sent without its contents and is not a top directory (stock
		// rsync: no XMIT_TOP_DIR, XMIT_NO_CONTENT_DIR from 30).
		g.TopDir = false
		return []*File{&g}, nil
	}
	// A directory: the shared scan for the module root, else a walk of
	// just this subtree.
	var tree []*File
	if rel == "." {
		s, err := c.full(ctx)
		if err != nil {
			return nil, err
		}
		tree = s.files
	} else if tree, err = c.scanTree(ctx, rel, nil); err != nil {
		return nil, err
	}
	prefix := ""  // stripped from module-relative paths
	namePre := "" // prepended to the remainder
	if contents {
		if rel != "." {
			prefix = rel + "/"
		}
	} else {
		prefix = rel + "/"
		namePre = path.Base(rel) + "/"
	}
	out := make([]*File, 0, len(tree))
	var skip string // excluded directory whose subtree is skipped
	for i, f := range tree {
		if skip != "" && strings.HasPrefix(f.Path, skip) {
			continue
		}
		skip = ""
		var name string
		switch {
		case i == 0 && contents:
			name = "."
		case i == 0:
			name = path.Base(rel)
		default:
			name = namePre + strings.TrimPrefix(f.Path, prefix)
			if !req.Recursive && contents && strings.Contains(strings.TrimPrefix(f.Path, prefix), "/") {
				continue
			}
		}
		if i > 0 && req.Rules.Excluded(name, f.IsDir()) {
			if f.IsDir() {
				skip = f.Path + "/"
			}
			continue
		}
		if name == f.Name && !(i == 0) {
			out = append(out, f)
			continue
		}
		g := *f
		g.Name = name
		g.TopDir = i == 0
		out = append(out, &g)
	}
	return out, nil
}

// Compare orders two entries as rsync 29+ does (f_name_cmp): component by
// component; within one directory non-directories sort before
// directories, and directory names compare as if they ended in "/".
// "." sorts first.
func Compare(a, b *File) int {
	if a.Name == b.Name {
		return 0
	}
	if a.Name == "." {
		return -1
	}
	if b.Name == "." {
		return 1
	}
	an, bn := a.Name, b.Name
	for {
		ai := strings.IndexByte(an, '/')
		bi := strings.IndexByte(bn, '/')
		ac, bc := an, bn
		if ai >= 0 {
			ac = an[:ai]
		}
		if bi >= 0 {
			bc = bn[:bi]
		}
		aDir := ai >= 0 || a.IsDir()
		bDir := bi >= 0 || b.IsDir()
		if ac == bc && ai >= 0 && bi >= 0 {
			an, bn = an[ai+1:], bn[bi+1:]
			continue
		}
		if ac == bc {
			// one is the directory itself, the other is inside it
			if ai < 0 && bi >= 0 {
				if aDir {
					return -1
				}
				return -1
			}
			if bi < 0 && ai >= 0 {
				return 1
			}
		}
		if aDir != bDir {
			if aDir {
				return 1
			}
			return -1
		}
		if aDir {
			ac += "/"
			bc += "/"
		}
		return strings.Compare(ac, bc)
	}
}
