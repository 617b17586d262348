// Package tree keeps lanmirror's local copy of the ebuild tree as a series of
// complete, immutable snapshots and pulls new ones from an upstream rsync
// mirror. A snapshot is published by swapping one symlink, so a reader sees
// either the old tree or the new one, never a half-updated mix.
//
// Layout below the store directory:
//
//	snapshots/<id>/             complete trees, never modified once published
//	snapshots/.incoming-<id>/   a sync in progress (removed on failure or at open)
//	current -> snapshots/<id>   the published snapshot
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
)

const (
	snapshotsDir   = "snapshots"
	currentLink    = "current"
	incomingPrefix = ".incoming-"
)

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

	mu     sync.Mutex
	pinned map[string]int // snapshot ID -> sessions reading it
	seq    int
}

// Open opens (creating if needed) the snapshot store in dir and removes the
// leftovers of syncs that were interrupted.
func Open(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("tree: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(abs, snapshotsDir), 0o755); err != nil {
		return nil, fmt.Errorf("tree: create store: %w", err)
	}
	s := &Store{dir: abs, pinned: map[string]int{}}
	ents, err := os.ReadDir(filepath.Join(abs, snapshotsDir))
	if err != nil {
		return nil, fmt.Errorf("tree: read store: %w", err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), incomingPrefix) {
			if err := os.RemoveAll(filepath.Join(abs, snapshotsDir, e.Name())); err != nil {
				return nil, fmt.Errorf("tree: remove interrupted sync %s: %w", e.Name(), err)
			}
		}
	}
	os.Remove(filepath.Join(abs, currentLink+".new"))
	return s, nil
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

// Acquire returns the published snapshot and pins it until release is called,
// so that Prune does not remove a tree a client is still reading.
func (s *Store) Acquire() (snap Snapshot, release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap, ok, err := s.Current()
	if err != nil {
		return Snapshot{}, nil, err
	}
	if !ok {
		return Snapshot{}, nil, errors.New("tree: no snapshot published yet")
	}
	s.pinned[snap.ID]++
	var once sync.Once
	return snap, func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.pinned[snap.ID]--; s.pinned[snap.ID] <= 0 {
				delete(s.pinned, snap.ID)
			}
		})
	}, nil
}

// Incoming is a snapshot being written.
type Incoming struct {
	s    *Store
	id   string
	Path string // where the new tree is written
	done bool
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

// Commit publishes the incoming tree: it is renamed into place, then the
// current symlink is swapped to it in one rename.
func (in *Incoming) Commit() (Snapshot, error) {
	if in.done {
		return Snapshot{}, errors.New("tree: snapshot already committed or aborted")
	}
	s := in.s
	final := filepath.Join(s.dir, snapshotsDir, in.id)
	if err := os.Rename(in.Path, final); err != nil {
		return Snapshot{}, fmt.Errorf("tree: finish snapshot: %w", err)
	}
	in.done = true
	if err := syncDir(filepath.Join(s.dir, snapshotsDir)); err != nil {
		return Snapshot{}, err
	}
	tmp := filepath.Join(s.dir, currentLink+".new")
	os.Remove(tmp)
	if err := os.Symlink(filepath.Join(snapshotsDir, in.id), tmp); err != nil {
		return Snapshot{}, fmt.Errorf("tree: publish snapshot: %w", err)
	}
	s.mu.Lock()
	err := os.Rename(tmp, s.CurrentPath())
	s.mu.Unlock()
	if err != nil {
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

// Prune removes old snapshots, keeping the newest keep ones (at least the
// current one) and any snapshot pinned by Acquire.
func (s *Store) Prune(keep int) (removed []string, err error) {
	if keep < 1 {
		keep = 1
	}
	all, err := s.List()
	if err != nil {
		return nil, err
	}
	cur, _, err := s.Current()
	if err != nil {
		return nil, err
	}
	for i := 0; i < len(all)-keep; i++ {
		id := all[i].ID
		s.mu.Lock()
		busy := s.pinned[id] > 0 || id == cur.ID
		s.mu.Unlock()
		if busy {
			continue
		}
		if err := os.RemoveAll(all[i].Path); err != nil {
			return removed, fmt.Errorf("tree: prune %s: %w", id, err)
		}
		removed = append(removed, id)
	}
	return removed, nil
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
