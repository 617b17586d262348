package distcache

import (
	"container/list"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"
)

// Small complete distfiles are kept in memory, so that a cache hit on one
// costs no system call for the file (open, stat, sendfile, close): most
// distfiles by count are small (patches, small tarballs), and a hit on a
// 40 KiB file spent as long in those calls as in sending it.
//
// Objects are immutable once renamed into place, and every change this
// process makes (commit, Remove) drops the key's entry at once. Changes
// made by another process sharing the data directory (lanmirror clean,
// import, a second server) are noticed within smallRecheck: an entry is
// served without a system call only that long after the last check that
// the file still has the same identity (device, inode, size, mtime,
// ctime); then one stat checks it again.
const (
	// DefaultSmallFileMax is the largest file kept in memory.
	DefaultSmallFileMax = 256 << 10
	// DefaultSmallFilesTotal bounds the memory all entries take.
	DefaultSmallFilesTotal = 64 << 20
	// smallRecheck is how long an entry is served without a stat.
	smallRecheck = time.Second
)

// smallFiles is the bounded, least-recently-used set of small files in
// memory, keyed by store key.
type smallFiles struct {
	maxFile, maxTotal int64
	recheck           time.Duration // smallRecheck (tests change it)

	mu    sync.Mutex
	total int64
	m     map[string]*list.Element // of *smallFile
	lru   list.List                // front: most recently used
	gen   uint64                   // bumped by every drop, see load
}

// smallFile is one file in memory.
type smallFile struct {
	key     string
	data    []byte
	fi      fs.FileInfo
	id      fileIdentity
	fileTag string    // storedETag without a Manifest entry
	checked time.Time // last identity check
}

// fileIdentity tells whether a name still refers to the same file.
type fileIdentity struct {
	id    uint64 // device and inode (0 where unknown)
	size  int64
	mtime int64
	ctime int64 // status change time (0 where unknown)
}

func identityOf(fi fs.FileInfo) fileIdentity {
	return fileIdentity{id: fileID(fi), size: fi.Size(), mtime: fi.ModTime().UnixNano(), ctime: ctimeOf(fi)}
}

func newSmallFiles(maxFile, maxTotal int64) *smallFiles {
	return &smallFiles{maxFile: maxFile, maxTotal: maxTotal, recheck: smallRecheck, m: map[string]*list.Element{}}
}

// wants reports whether a file of this key and size is kept in memory:
// distfiles (immutable by name) up to maxFile bytes.
func (c *smallFiles) wants(key string, size int64) bool {
	return c != nil && c.maxTotal > 0 && size <= c.maxFile && size <= c.maxTotal &&
		strings.HasPrefix(key, DistfilesPrefix)
}

// get returns the entry of key, moved to the front, and whether it was
// checked recently enough to serve without a stat.
func (c *smallFiles) get(key string, now time.Time) (*smallFile, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok {
		return nil, false
	}
	c.lru.MoveToFront(e)
	f := e.Value.(*smallFile)
	return f, now.Sub(f.checked) < c.recheck && !now.Before(f.checked)
}

// confirm records that f was checked at now.
func (c *smallFiles) confirm(f *smallFile, now time.Time) {
	c.mu.Lock()
	f.checked = now
	c.mu.Unlock()
}

// put adds f unless a drop happened since gen (the file may be gone or
// replaced), evicting the least recently used entries beyond the bound.
func (c *smallFiles) put(f *smallFile, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if e, ok := c.m[f.key]; ok {
		c.remove(e)
	}
	c.m[f.key] = c.lru.PushFront(f)
	c.total += int64(len(f.data))
	for c.total > c.maxTotal {
		c.remove(c.lru.Back())
	}
}

// generation returns the drop counter, to pass to put.
func (c *smallFiles) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// drop forgets key (the store changed it).
func (c *smallFiles) drop(key string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if e, ok := c.m[key]; ok {
		c.remove(e)
	}
}

// remove unlinks e; c.mu held.
func (c *smallFiles) remove(e *list.Element) {
	f := c.lru.Remove(e).(*smallFile)
	delete(c.m, f.key)
	c.total -= int64(len(f.data))
}

// len returns the number of entries and their bytes.
func (c *smallFiles) len() (int, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m), c.total
}

// readSmall reads the whole of f (size bytes, from offset 0) into memory.
func readSmall(f *os.File, size int64) ([]byte, error) {
	data := make([]byte, size)
	n, err := f.ReadAt(data, 0)
	if err == io.EOF && int64(n) == size {
		err = nil
	}
	if err != nil {
		return nil, err
	}
	return data, nil
}
