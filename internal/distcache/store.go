package distcache

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// servedFlushInterval is how often the served-time index is written to
// disk when it has changed.
const servedFlushInterval = time.Minute

// Store is the on-disk cache: complete objects only, each at dir/<key>.
//
// Layout below the data directory:
//
//	<key>                 complete objects (distfiles/<name>, urls/..., binhost/...)
//	.partial/<id>/        downloads and copies in progress, one locked
//	                      directory per process (see partial.go)
//	state/served          last-served times (lanmirror's own record, not atime)
//	state/meta/<key>      revalidation data of volatile objects (ETag, Last-Modified)
//
// Objects enter the store only through a rename of a complete, synced
// temporary file from .partial, so a reader never sees a partial object.
// Leftovers of interrupted downloads (a crash, kill -9) are removed by
// OpenStore rather than resumed: the next request downloads the file
// again, which is always correct. Live downloads of another process
// sharing the data directory are left alone. All file access goes through an os.Root
// on the data directory, so no key can reach outside it (nor can a
// symlink: dir/distfiles must be a directory inside dir, e.g. a bind
// mount rather than a symlink to another file system).
type Store struct {
	dir  string
	root *os.Root
	log  *slog.Logger

	dist        *os.Root // dir/distfiles: one openat per distfile lookup
	owner       *[2]int  // uid, gid new directories get (root process, see owner.go)
	partial     string   // this process's directory below .partial
	partialLock *os.File // holds the flock on it

	served    *servedIndex
	small     *smallFiles // small distfiles in memory (small.go)
	stop      chan struct{}
	flushDone chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// OpenStore opens (creating) the cache rooted at dir (the --data
// directory). It removes the leftovers of interrupted downloads below
// dir/.partial and loads the served-time index from dir/state.
func OpenStore(dir string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("distcache: store %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("distcache: create store: %w", err)
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("distcache: open store: %w", err)
	}
	s := &Store{dir: abs, root: root, log: log, stop: make(chan struct{}), flushDone: make(chan struct{}),
		small: newSmallFiles(DefaultSmallFileMax, DefaultSmallFilesTotal)}
	if err := s.init(); err != nil {
		s.releasePartial()
		if s.dist != nil {
			s.dist.Close()
		}
		root.Close()
		return nil, err
	}
	go s.flushLoop()
	return s, nil
}

func (s *Store) init() error {
	s.initOwner()
	for _, d := range []string{partialDir, stateDir, DistfilesPrefix[:len(DistfilesPrefix)-1], URLsPrefix[:len(URLsPrefix)-1], BinhostPrefix[:len(BinhostPrefix)-1]} {
		if fi, err := s.root.Lstat(d); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("distcache: %s is a symlink: all file access stays inside %s, so make it a directory there (a bind mount works)",
				filepath.Join(s.dir, d), s.dir)
		}
	}
	// Interrupted downloads: removed, never visible as objects.
	if err := s.initPartial(); err != nil {
		return err
	}
	for _, d := range []string{stateDir, stateDir + "/meta", DistfilesPrefix[:len(DistfilesPrefix)-1]} {
		if err := s.mkdir(d); err != nil {
			return fmt.Errorf("distcache: create %s: %w", d, err)
		}
	}
	dist, err := s.root.OpenRoot(DistfilesPrefix[:len(DistfilesPrefix)-1])
	if err != nil {
		return fmt.Errorf("distcache: open %s: %w", DistfilesPrefix, err)
	}
	s.dist = dist
	idx, err := loadServed(s.root, s.log)
	if err != nil {
		return err
	}
	s.served = idx
	return nil
}

// Dir returns the absolute data directory.
func (s *Store) Dir() string { return s.dir }

// Path returns the absolute file name of the object key (whether or not
// it exists), for logs and tools; access files through the Store methods.
func (s *Store) Path(key string) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	return filepath.Join(s.dir, filepath.FromSlash(key)), nil
}

// Open opens the complete object key. The error wraps fs.ErrNotExist when
// there is no such object, ErrBadName when the key is not acceptable.
func (s *Store) Open(key string) (*os.File, fs.FileInfo, error) {
	if err := CheckKey(key); err != nil {
		return nil, nil, err
	}
	r, name := s.rootFor(key)
	f, err := r.Open(name)
	if err != nil {
		return nil, nil, s.notExist(key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("distcache: stat %s: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("distcache: %s: not a regular file: %w", key, fs.ErrNotExist)
	}
	return f, fi, nil
}

// Stat describes the complete object key, like Open.
func (s *Store) Stat(key string) (fs.FileInfo, error) {
	if err := CheckKey(key); err != nil {
		return nil, err
	}
	r, name := s.rootFor(key)
	fi, err := r.Stat(name)
	if err != nil {
		return nil, s.notExist(key, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("distcache: %s: not a regular file: %w", key, fs.ErrNotExist)
	}
	return fi, nil
}

// rootFor returns the root to open key in, and its name there: distfiles
// directly in dir/distfiles, the rest below dir.
func (s *Store) rootFor(key string) (*os.Root, string) {
	if name, ok := strings.CutPrefix(key, DistfilesPrefix); ok && s.dist != nil && !strings.Contains(name, "/") {
		return s.dist, name
	}
	return s.root, key
}

// notExist maps the errors of a lookup below the root: a missing file or
// a path component that is a file ("not a directory") both mean the object
// does not exist.
func (s *Store) notExist(key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
		return fmt.Errorf("distcache: %s: %w", key, fs.ErrNotExist)
	}
	return fmt.Errorf("distcache: %s: %w", key, err)
}

// Add imports the verified local file src as object key (replacing any
// existing object): a hard link if possible, else a copy to a temporary
// file that is synced and renamed into place. With move, src is removed
// once the object is in place.
func (s *Store) Add(key, src string, move bool) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("distcache: add %s: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("distcache: add %s: %s is not a regular file", key, src)
	}
	tmp := s.tempName()
	linked := os.Link(src, filepath.Join(s.dir, filepath.FromSlash(tmp))) == nil
	if !linked {
		if err := s.copyIn(src, tmp, fi); err != nil {
			s.root.Remove(tmp)
			return fmt.Errorf("distcache: add %s: %w", key, err)
		}
	}
	if err := s.commit(tmp, key); err != nil {
		s.root.Remove(tmp)
		return fmt.Errorf("distcache: add %s: %w", key, err)
	}
	if move {
		if err := os.Remove(src); err != nil {
			return fmt.Errorf("distcache: add %s: remove source: %w", key, err)
		}
	}
	s.log.Debug("object added", "key", key, "src", src, "linked", linked, "moved", move)
	return nil
}

// copyIn copies src to the temporary file tmp, synced, with src's mtime.
func (s *Store) copyIn(src, tmp string, fi fs.FileInfo) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := s.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	buf := make([]byte, 256<<10)
	if _, err := io.CopyBuffer(onlyWriter{out}, onlyReader{in}, buf); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return s.root.Chtimes(tmp, fi.ModTime(), fi.ModTime())
}

// onlyReader and onlyWriter hide ReadFrom/WriteTo so that CopyBuffer uses
// the fixed buffer (bounded memory whatever the file types).
type onlyReader struct{ io.Reader }
type onlyWriter struct{ io.Writer }

// Remove deletes the object key and what the store records about it. A
// missing object is not an error.
func (s *Store) Remove(key string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	if fi, err := s.root.Lstat(key); err == nil && fi.IsDir() {
		return fmt.Errorf("distcache: remove %s: is a directory", key)
	}
	err := s.root.Remove(key)
	s.small.drop(key)
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !isNotDir(err) {
		return fmt.Errorf("distcache: remove %s: %w", key, err)
	}
	s.served.forget(key)
	if err := s.root.Remove(metaName(key)); err != nil && !errors.Is(err, fs.ErrNotExist) && !isNotDir(err) {
		s.log.Warn("cannot remove object metadata", "key", key, "err", err)
	}
	s.log.Debug("object removed", "key", key)
	return nil
}

// MarkServed records that key was served now. The record is lanmirror's
// own (not the file's atime), kept in memory and written to
// dir/state/served every minute when it changed and at Close.
func (s *Store) MarkServed(key string) {
	if CheckKey(key) != nil {
		return
	}
	s.served.mark(key, time.Now())
}

// Entry describes one object of the store.
type Entry struct {
	Key        string    // the store key, e.g. "distfiles/which-2.23.tar.gz"
	Name       string    // Key without the prefix given to Entries
	Size       int64     // bytes
	ModTime    time.Time // the file's modification time (upstream Last-Modified when known)
	LastServed time.Time // last MarkServed; zero when never served since the record began
}

// Entries lists the objects whose keys start with prefix (e.g.
// DistfilesPrefix), sorted by key. Directories and anything that is not a
// regular file are skipped; with an empty prefix, only the object
// directories (distfiles/, urls/, binhost/) are listed, not the rest of
// the data directory (tree snapshots, state).
func (s *Store) Entries(prefix string) ([]Entry, error) {
	dir := "."
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dir = prefix[:i]
		if err := CheckKey(dir); err != nil {
			return nil, err
		}
	}
	var out []Entry
	err := fs.WalkDir(s.root.FS(), dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		if d.IsDir() {
			if dir == "." && strings.Count(p, "/") == 0 && p != "." && !isObjectDir(p) {
				return fs.SkipDir // .partial, state, tree/ (the ebuild tree snapshots)...
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(p, prefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking
			}
			return err
		}
		out = append(out, Entry{
			Key:        p,
			Name:       p[len(prefix):],
			Size:       fi.Size(),
			ModTime:    fi.ModTime(),
			LastServed: s.served.get(p),
		})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("distcache: list %q: %w", prefix, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// isObjectDir reports whether a top-level directory holds objects.
func isObjectDir(name string) bool {
	switch name + "/" {
	case DistfilesPrefix, URLsPrefix, BinhostPrefix:
		return true
	}
	return false
}

// Close writes the served-time index and releases the store.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.flushDone
		s.closeErr = s.served.flush(s)
		s.releasePartial()
		if s.dist != nil {
			s.dist.Close()
		}
		if err := s.root.Close(); err != nil && s.closeErr == nil {
			s.closeErr = err
		}
	})
	return s.closeErr
}

func (s *Store) flushLoop() {
	defer close(s.flushDone)
	t := time.NewTicker(servedFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.served.flush(s); err != nil {
				s.log.Warn("cannot save the served-time index", "err", err)
			}
		}
	}
}

// tempName returns a fresh name below .partial.
func (s *Store) tempName() string {
	var b [12]byte
	rand.Read(b[:])
	return s.partial + "/" + hex.EncodeToString(b[:])
}

// createTemp creates a new empty temporary file below .partial, open for
// reading and writing.
func (s *Store) createTemp() (*os.File, string, error) {
	for range 5 {
		name := s.tempName()
		f, err := s.root.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, "", fmt.Errorf("distcache: create temporary file: %w", err)
		}
		return f, name, nil
	}
	return nil, "", fmt.Errorf("distcache: create temporary file: name collisions")
}

// SetSmallFiles sets the bounds of the in-memory copies of small
// distfiles (small.go): files up to maxFile bytes, maxTotal bytes in all
// (0: none kept). Call it before serving.
func (s *Store) SetSmallFiles(maxFile, maxTotal int64) {
	s.small = newSmallFiles(maxFile, maxTotal)
}

// SmallFiles returns how many small files are held in memory and their
// bytes.
func (s *Store) SmallFiles() (int, int64) { return s.small.len() }

// commit renames the complete, synced temporary file tmp to key (creating
// the parent directories) and syncs the directory, so the object survives
// a crash once commit returns.
func (s *Store) commit(tmp, key string) error {
	parent := path.Dir(key)
	if err := s.root.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("create directory: %w", err)
	}
	if fi, err := s.root.Lstat(key); err == nil && fi.IsDir() {
		return fmt.Errorf("%s is a directory", key)
	}
	err := s.root.Rename(tmp, key)
	s.small.drop(key)
	if err != nil {
		return fmt.Errorf("rename into place: %w", err)
	}
	if err := s.syncDir(parent); err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	return nil
}

func (s *Store) syncDir(dir string) error {
	d, err := s.root.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// writeAtomic writes data to the file name below the root through a
// synced temporary file and a rename.
func (s *Store) writeAtomic(name string, data []byte) error {
	f, tmp, err := s.createTemp()
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.commitAny(tmp, name)
	}
	if err != nil {
		s.root.Remove(tmp)
		return fmt.Errorf("distcache: write %s: %w", name, err)
	}
	return nil
}

// commitAny is commit for the store's own files (no key check).
func (s *Store) commitAny(tmp, name string) error {
	parent := path.Dir(name)
	if err := s.root.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	if err := s.root.Rename(tmp, name); err != nil {
		return err
	}
	return s.syncDir(parent)
}
