package distcache

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Temporary files live in a directory of their own per process that has
// the store open, .partial/<id>, locked (flock) for as long as the store
// is open. Several processes may share a data directory (the daemon and
// "lanmirror prefetch", "import", "clean"): opening the store removes
// only the directories whose lock is free, those of processes that ended
// (exited, crashed or were killed), never a live download of another
// process.

// initPartial removes the leftovers of ended processes and claims this
// process's directory.
func (s *Store) initPartial() error {
	if err := s.mkdir(partialDir); err != nil {
		return fmt.Errorf("distcache: create %s: %w", partialDir, err)
	}
	if fi, err := s.root.Lstat(partialDir); err != nil || !fi.IsDir() {
		return fmt.Errorf("distcache: %s is not a directory", partialDir)
	}
	ents, err := fs.ReadDir(s.root.FS(), partialDir)
	if err != nil {
		return fmt.Errorf("distcache: read %s: %w", partialDir, err)
	}
	removed := 0
	for _, e := range ents {
		p := partialDir + "/" + e.Name()
		if !e.IsDir() {
			if err := s.root.Remove(p); err == nil {
				removed++
			}
			continue
		}
		d, err := s.root.Open(p)
		if err != nil {
			continue
		}
		if ok, _ := tryLock(d); ok {
			if err := s.root.RemoveAll(p); err != nil {
				d.Close()
				return fmt.Errorf("distcache: remove interrupted downloads in %s: %w", p, err)
			}
			removed++
		}
		d.Close()
	}
	if removed > 0 {
		s.log.Info("removed leftovers of interrupted downloads", "count", removed)
	}
	for range 10 {
		var b [8]byte
		rand.Read(b[:])
		p := partialDir + "/" + hex.EncodeToString(b[:])
		if err := s.root.Mkdir(p, 0o755); err != nil {
			if errors.Is(err, fs.ErrExist) {
				continue
			}
			return fmt.Errorf("distcache: create %s: %w", p, err)
		}
		if err := s.own(p); err != nil {
			return fmt.Errorf("distcache: %w", err)
		}
		d, err := s.root.Open(p)
		if err != nil {
			return fmt.Errorf("distcache: open %s: %w", p, err)
		}
		ok, err := tryLock(d)
		if err != nil {
			d.Close()
			return fmt.Errorf("distcache: lock %s: %w", p, err)
		}
		// Another process opening the store may have taken the directory
		// for a leftover before the lock: then take another.
		fi, err1 := d.Stat()
		fp, err2 := s.root.Lstat(p)
		if !ok || err1 != nil || err2 != nil || !os.SameFile(fi, fp) {
			d.Close()
			continue
		}
		s.partial, s.partialLock = p, d
		return nil
	}
	return fmt.Errorf("distcache: cannot claim a directory below %s", partialDir)
}

// releasePartial removes this process's directory and drops its lock.
func (s *Store) releasePartial() {
	if s.partialLock == nil {
		return
	}
	if err := s.root.RemoveAll(s.partial); err != nil {
		s.log.Warn("cannot remove the temporary directory", "dir", s.partial, "err", err)
	}
	s.partialLock.Close()
	s.partialLock = nil
}
