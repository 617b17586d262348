// Package status carries the live figures the HTTP status page shows from
// the components that own them (the distfiles cache, the tree, the rsync
// daemon) to the page. serve builds one Board, hands it to the HTTP side
// at construction, and each component registers its source on it when it
// opens; nothing is global.
package status

import (
	"sync"
	"time"
)

// Download is one upstream download in progress.
type Download struct {
	// Name is what is downloaded (a distfile name, a URL path).
	Name string
	// Written is the bytes received so far; Size the full size, -1 while
	// unknown.
	Written, Size int64
}

// Tree is the ebuild tree being served.
type Tree struct {
	// Path is the served tree.
	Path string
	// Snapshot is the published snapshot's ID ("" for a plain directory).
	Snapshot string
	// Timestamp is the tree's own time (metadata/timestamp.chk); zero
	// when unknown.
	Timestamp time.Time
	// Published is when the snapshot was published (the current symlink
	// changed); zero for a plain directory.
	Published time.Time
}

// Rsync is the rsync daemon's sessions.
type Rsync struct {
	// Active sessions now; Total since the start; Bytes sent to clients.
	Active, Total, Bytes int64
}

// Sources are the functions that report the figures; nil means the
// component is not running.
type Sources struct {
	// Cache reports the distfiles cache's size in bytes and files.
	Cache func() (bytes int64, files int)
	// Downloads lists the upstream downloads in progress.
	Downloads func() []Download
	// Tree describes the served tree; ok is false when there is none yet.
	Tree func() (t Tree, ok bool)
	// Rsync reports the rsync daemon's sessions.
	Rsync func() Rsync
}

// Board is where components register their Sources; the status page reads
// them at each request. The zero value is ready; a nil *Board has no
// sources.
type Board struct {
	mu  sync.Mutex
	src Sources
}

// SetCache registers the cache size source.
func (b *Board) SetCache(f func() (int64, int)) { b.set(func(s *Sources) { s.Cache = f }) }

// SetDownloads registers the downloads source.
func (b *Board) SetDownloads(f func() []Download) { b.set(func(s *Sources) { s.Downloads = f }) }

// SetTree registers the tree source.
func (b *Board) SetTree(f func() (Tree, bool)) { b.set(func(s *Sources) { s.Tree = f }) }

// SetRsync registers the rsync source.
func (b *Board) SetRsync(f func() Rsync) { b.set(func(s *Sources) { s.Rsync = f }) }

func (b *Board) set(f func(*Sources)) {
	b.mu.Lock()
	f(&b.src)
	b.mu.Unlock()
}

// Sources returns the registered sources.
func (b *Board) Sources() Sources {
	if b == nil {
		return Sources{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.src
}
