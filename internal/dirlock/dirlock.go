// Package dirlock pins directories across processes with flock(2): a
// reader holds a shared lock on a directory while it uses it, and a
// remover takes the exclusive lock without waiting and skips what is held.
//
// The tree mirror's snapshots use it: every rsync session holds a shared
// lock on the snapshot it reads (in `lanmirror serve`), and pruning (in
// `lanmirror serve --tree-upstream` or in a separate `lanmirror sync`
// process) removes only snapshots it could lock exclusively. A remover
// renames the directory away while it holds the exclusive lock, so a
// reader that opened the directory just before checks, once it has its
// shared lock, that the name still leads to the directory it locked
// (Pin does this) and otherwise tries again.
//
// Locks belong to the open file: two Locks in one process exclude each
// other like Locks in two processes. Off Unix, and on file systems without
// flock, locking is a no-op (Lock.Held reports false).
package dirlock

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// ErrBusy is returned by TryExclusive when another holder has the
// directory locked.
var ErrBusy = errors.New("directory is in use")

// pinAttempts and pinDelay bound how long Pin waits for a remover that
// holds the exclusive lock (it holds it only for a rename).
const (
	pinAttempts = 200
	pinDelay    = 10 * time.Millisecond
)

// Lock is a held lock on an open directory; Close releases it.
type Lock struct {
	f    *os.File
	held bool
}

// Held reports whether the lock is really held (false where flock is
// unavailable).
func (l *Lock) Held() bool { return l != nil && l.held }

// Stat returns the locked directory's file info.
func (l *Lock) Stat() (os.FileInfo, error) { return l.f.Stat() }

// Close releases the lock.
func (l *Lock) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// Pin takes a shared lock on the directory path and returns it once the
// name still leads to the locked directory. It waits (bounded) while a
// remover holds the exclusive lock and fails with an os.ErrNotExist error
// when the directory was removed.
func Pin(path string) (*Lock, error) {
	var last error
	for range pinAttempts {
		l, err := open(path)
		if err != nil {
			return nil, err
		}
		held, err := lock(l.f, false)
		if errors.Is(err, ErrBusy) {
			l.Close()
			last = err
			time.Sleep(pinDelay)
			continue
		}
		if err != nil {
			l.Close()
			return nil, err
		}
		l.held = held
		fi, err := l.f.Stat()
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("dirlock: %w", err)
		}
		now, err := os.Stat(path)
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("dirlock: %w", err)
		}
		if !os.SameFile(fi, now) {
			// Renamed away (and replaced) between open and lock.
			l.Close()
			last = fmt.Errorf("dirlock: %s was replaced", path)
			continue
		}
		return l, nil
	}
	return nil, fmt.Errorf("dirlock: pin %s: %w", path, last)
}

// TryExclusive takes the exclusive lock on the directory path without
// waiting; it fails with ErrBusy when a reader or another remover holds
// it.
func TryExclusive(path string) (*Lock, error) {
	l, err := open(path)
	if err != nil {
		return nil, err
	}
	held, err := lock(l.f, true)
	if err != nil {
		l.Close()
		if errors.Is(err, ErrBusy) {
			return nil, fmt.Errorf("dirlock: %s: %w", path, ErrBusy)
		}
		return nil, err
	}
	l.held = held
	return l, nil
}

func open(path string) (*Lock, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dirlock: %w", err)
	}
	return &Lock{f: f}, nil
}
