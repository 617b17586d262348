// Package tree keeps lanmirror's local copy of the ebuild tree as a series of
// complete, immutable snapshots and pulls new ones from upstream rsync
// mirrors. A snapshot is published by swapping one symlink, so a reader sees
// either the old tree or the new one, never a half-updated mix.
//
// Layout below the store directory:
//
//	snapshots/<id>/             complete trees, never modified once published
//	snapshots/.incoming-<id>/   a pull in progress (removed by the next pull)
//	snapshots/.prune-<id>/      a snapshot being removed
//	current -> snapshots/<id>   the published snapshot
//
// The one process pulling holds a flock on the store directory. Readers pin the snapshot they read with a shared flock on its directory
// (Acquire, or internal/dirlock.Pin on the resolved "current" as the rsync
// daemon does), across processes: Prune skips pinned snapshots and removes
// them on a later call.
package tree

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lanmirror/lanmirror/internal/dirlock"
)

const (
	snapshotsDir   = "snapshots"
	currentLink    = "current"
	incomingPrefix = ".incoming-"
	prunePrefix    = ".prune-"
	probePrefix    = ".probe-"
)

// ErrBusy is returned when another process (or Syncer) is pulling into the
// same store.
var ErrBusy = errors.New("another pull into this tree store is in progress")

// Snapshot is one published tree.
type Snapshot struct {
	// ID is the directory name below snapshots/; IDs sort by creation time.
	ID string
	// Path is the absolute path of the tree.
	Path string
}

// Store manages the snapshots of one tree.
type Store struct {
	dir string

	mu  sync.Mutex
	seq int
	// opened: leftovers Open removed, reported by the next pull.
	opened []string
}

// Open opens (creating if needed) the snapshot store in dir. When no pull
// is running it removes the leftovers of interrupted ones.
func Open(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("tree: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(abs, snapshotsDir), 0o755); err != nil {
		return nil, fmt.Errorf("tree: create store: %w", err)
	}
	s := &Store{dir: abs}
	unlock, err := s.lock()
	if errors.Is(err, ErrBusy) {
		return s, nil // the running pull cleans up
	}
	if err != nil {
		return nil, err
	}
	defer unlock()
	if s.opened, err = s.cleanup(); err != nil {
		return nil, err
	}
	return s, nil
}

// lock takes the store's writer lock (one pull at a time, across
// processes: a flock on the store directory) without waiting.
func (s *Store) lock() (unlock func(), err error) {
	l, err := dirlock.TryExclusive(s.dir)
	if errors.Is(err, dirlock.ErrBusy) {
		return nil, fmt.Errorf("tree: %s: %w", s.dir, ErrBusy)
	}
	if err != nil {
		return nil, fmt.Errorf("tree: lock store: %w", err)
	}
	return func() { l.Close() }, nil
}

// cleanup removes what interrupted pulls left behind: incoming trees,
// timestamp probes, half-removed snapshots, a half-made "current.new", and
// snapshots newer than the published one (a pull killed between moving
// its tree into place and switching "current"). Call with the lock held.
func (s *Store) cleanup() (removed []string, err error) {
	snaps := filepath.Join(s.dir, snapshotsDir)
	ents, err := os.ReadDir(snaps)
	if err != nil {
		return nil, fmt.Errorf("tree: read store: %w", err)
	}
	cur, haveCur, err := s.Current()
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, incomingPrefix), strings.HasPrefix(name, prunePrefix):
			if err := os.RemoveAll(filepath.Join(snaps, name)); err != nil {
				return removed, fmt.Errorf("tree: remove leftover %s: %w", name, err)
			}
			removed = append(removed, name)
		case !strings.HasPrefix(name, ".") && e.IsDir() && haveCur && name > cur.ID:
			ok, err := s.remove(name)
			if err != nil {
				return removed, err
			}
			if ok {
				removed = append(removed, name)
			}
		}
	}
	ents, err = os.ReadDir(s.dir)
	if err != nil {
		return removed, fmt.Errorf("tree: read store: %w", err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), probePrefix) || e.Name() == currentLink+".new" {
			if err := os.RemoveAll(filepath.Join(s.dir, e.Name())); err != nil {
				return removed, fmt.Errorf("tree: remove leftover %s: %w", e.Name(), err)
			}
			removed = append(removed, e.Name())
		}
	}
	return removed, nil
}

// Dir returns the store directory.
func (s *Store) Dir() string { return s.dir }

// CurrentPath is the path of the "current" symlink: serving from it always
// reaches the published snapshot.
func (s *Store) CurrentPath() string { return filepath.Join(s.dir, currentLink) }

// Current returns the published snapshot; ok is false before the first one.
func (s *Store) Current() (snap Snapshot, ok bool, err error) {
	target, err := os.Readlink(s.CurrentPath())
	if errors.Is(err, os.ErrNotExist) {
		return Snapshot{}, false, nil
	}
	if err != nil {
		return Snapshot{}, false, fmt.Errorf("tree: read current snapshot: %w", err)
	}
	id := filepath.Base(target)
	return Snapshot{ID: id, Path: filepath.Join(s.dir, snapshotsDir, id)}, true, nil
}

// Acquire returns the published snapshot and pins it until release is
// called, so that Prune (in this process or another) does not remove a
// tree a reader is still using.
func (s *Store) Acquire() (snap Snapshot, release func(), err error) {
	for range 10 {
		snap, ok, err := s.Current()
		if err != nil {
			return Snapshot{}, nil, err
		}
		if !ok {
			return Snapshot{}, nil, errors.New("tree: no snapshot published yet")
		}
		pin, err := dirlock.Pin(snap.Path)
		if errors.Is(err, os.ErrNotExist) {
			continue // switched and pruned meanwhile: take the new one
		}
		if err != nil {
			return Snapshot{}, nil, fmt.Errorf("tree: pin snapshot: %w", err)
		}
		var once sync.Once
		return snap, func() { once.Do(func() { pin.Close() }) }, nil
	}
	return Snapshot{}, nil, errors.New("tree: the published snapshot keeps changing")
}

// Incoming is a snapshot being written.
type Incoming struct {
	s    *Store
	id   string
	Path string // where the new tree is written
	done bool
	// beforeSwap, if set, runs between moving the tree into place and
	// switching "current" (tests kill the process there).
	beforeSwap func()
}

// Begin starts a new snapshot directory.
func (s *Store) Begin() (*Incoming, error) {
	s.mu.Lock()
	s.seq++
	id := fmt.Sprintf("%s-%03d", time.Now().UTC().Format("20060102T150405.000000000Z"), s.seq%1000)
	s.mu.Unlock()
	p := filepath.Join(s.dir, snapshotsDir, incomingPrefix+id)
	if err := os.Mkdir(p, 0o755); err != nil {
		return nil, fmt.Errorf("tree: begin snapshot: %w", err)
	}
	return &Incoming{s: s, id: id, Path: p}, nil
}

// Abort removes the incoming tree.
func (in *Incoming) Abort() error {
	if in.done {
		return nil
	}
	in.done = true
	if err := os.RemoveAll(in.Path); err != nil {
		return fmt.Errorf("tree: abort snapshot: %w", err)
	}
	return nil
}

// Commit publishes the incoming tree: its files are flushed to disk
// (syncfs), it is renamed into place, then the current symlink is swapped
// to it in one rename, each directory change flushed too. A crash at any
// point leaves "current" on a complete tree (the old or the new one).
func (in *Incoming) Commit() (Snapshot, error) {
	if in.done {
		return Snapshot{}, errors.New("tree: snapshot already committed or aborted")
	}
	s := in.s
	if err := syncFS(in.Path); err != nil {
		return Snapshot{}, err
	}
	final := filepath.Join(s.dir, snapshotsDir, in.id)
	if err := os.Rename(in.Path, final); err != nil {
		return Snapshot{}, fmt.Errorf("tree: finish snapshot: %w", err)
	}
	in.done = true
	if err := syncDir(filepath.Join(s.dir, snapshotsDir)); err != nil {
		return Snapshot{}, err
	}
	if in.beforeSwap != nil {
		in.beforeSwap()
	}
	tmp := filepath.Join(s.dir, currentLink+".new")
	os.Remove(tmp)
	if err := os.Symlink(filepath.Join(snapshotsDir, in.id), tmp); err != nil {
		return Snapshot{}, fmt.Errorf("tree: publish snapshot: %w", err)
	}
	if err := os.Rename(tmp, s.CurrentPath()); err != nil {
		return Snapshot{}, fmt.Errorf("tree: publish snapshot: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		return Snapshot{}, err
	}
	return Snapshot{ID: in.id, Path: final}, nil
}

// List returns the published snapshots, oldest first.
func (s *Store) List() ([]Snapshot, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, snapshotsDir))
	if err != nil {
		return nil, fmt.Errorf("tree: list snapshots: %w", err)
	}
	var out []Snapshot
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		out = append(out, Snapshot{ID: e.Name(), Path: filepath.Join(s.dir, snapshotsDir, e.Name())})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// PruneResult says what Prune did.
type PruneResult struct {
	Removed []string // snapshots removed
	Held    []string // snapshots due for removal but pinned by a reader (retry later)
}

// Prune removes old snapshots, keeping the newest keep ones (at least the
// current one). A snapshot pinned by a reader, in any process, is kept and
// listed in Held: call Prune again later. It fails with ErrBusy while a
// pull runs (the pull prunes when it ends).
func (s *Store) Prune(keep int) (PruneResult, error) {
	unlock, err := s.lock()
	if err != nil {
		return PruneResult{}, err
	}
	defer unlock()
	return s.prune(keep)
}

// prune is Prune with the lock held.
func (s *Store) prune(keep int) (res PruneResult, err error) {
	if keep < 1 {
		keep = 1
	}
	all, err := s.List()
	if err != nil {
		return res, err
	}
	cur, _, err := s.Current()
	if err != nil {
		return res, err
	}
	for i := 0; i < len(all)-keep; i++ {
		id := all[i].ID
		if id == cur.ID {
			continue
		}
		ok, err := s.remove(id)
		if err != nil {
			return res, err
		}
		if ok {
			res.Removed = append(res.Removed, id)
		} else {
			res.Held = append(res.Held, id)
		}
	}
	return res, nil
}

// remove deletes snapshot id unless a reader pins it (ok false then):
// with the exclusive lock held the directory is renamed away, so that no
// new reader can pin it, and then removed.
func (s *Store) remove(id string) (ok bool, err error) {
	p := filepath.Join(s.dir, snapshotsDir, id)
	ex, err := dirlock.TryExclusive(p)
	if errors.Is(err, dirlock.ErrBusy) {
		return false, nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("tree: prune %s: %w", id, err)
	}
	gone := filepath.Join(s.dir, snapshotsDir, prunePrefix+id)
	err = os.Rename(p, gone)
	ex.Close()
	if err != nil {
		return false, fmt.Errorf("tree: prune %s: %w", id, err)
	}
	if err := os.RemoveAll(gone); err != nil {
		return false, fmt.Errorf("tree: prune %s: %w", id, err)
	}
	return true, nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("tree: sync %s: %w", dir, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("tree: sync %s: %w", dir, err)
	}
	return nil
}
