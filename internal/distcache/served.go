package distcache

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// servedFile holds the served-time index: one line per key,
// "<unix nanoseconds> <key>\n" (keys hold no control characters).
const servedFile = stateDir + "/served"

// servedIndex is the in-memory last-served record of the store.
type servedIndex struct {
	mu        sync.Mutex
	last      map[string]time.Time
	forgotten map[string]bool // removed since the last write
	dirty     bool
	saveMu    sync.Mutex // one writer of the file at a time
}

func loadServed(root *os.Root, log *slog.Logger) (*servedIndex, error) {
	idx := &servedIndex{last: map[string]time.Time{}, forgotten: map[string]bool{}}
	if err := idx.read(root, log, idx.last); err != nil {
		return nil, err
	}
	return idx, nil
}

// read adds the file's records to m (keeping the later time of a key).
func (x *servedIndex) read(root *os.Root, log *slog.Logger, m map[string]time.Time) error {
	f, err := root.Open(servedFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("distcache: open served-time index: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	bad := 0
	for sc.Scan() {
		ts, key, ok := strings.Cut(sc.Text(), " ")
		n, err := strconv.ParseInt(ts, 10, 64)
		if !ok || err != nil || CheckKey(key) != nil {
			bad++
			continue
		}
		if t := time.Unix(0, n); t.After(m[key]) {
			m[key] = t
		}
	}
	if err := sc.Err(); err != nil {
		// A damaged index loses only served times, never objects.
		log.Warn("served-time index damaged; keeping what was read", "err", err)
	}
	if bad > 0 {
		log.Warn("served-time index: skipped bad lines", "count", bad)
	}
	return nil
}

func (x *servedIndex) mark(key string, t time.Time) {
	x.mu.Lock()
	x.last[key] = t
	x.dirty = true
	x.mu.Unlock()
}

func (x *servedIndex) forget(key string) {
	x.mu.Lock()
	delete(x.last, key)
	x.forgotten[key] = true
	x.dirty = true
	x.mu.Unlock()
}

func (x *servedIndex) get(key string) time.Time {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.last[key]
}

// flush writes the index if it changed since the last write. Records
// other processes sharing the data directory wrote meanwhile are merged
// in (the later time wins), except for keys removed here.
func (x *servedIndex) flush(s *Store) error {
	x.saveMu.Lock()
	defer x.saveMu.Unlock()
	x.mu.Lock()
	dirty := x.dirty
	x.mu.Unlock()
	if !dirty {
		return nil
	}
	disk := map[string]time.Time{}
	if err := x.read(s.root, s.log, disk); err != nil {
		s.log.Warn("served-time index unreadable; rewriting it", "err", err)
	}
	var buf bytes.Buffer
	x.mu.Lock()
	for k, t := range disk {
		if !x.forgotten[k] && t.After(x.last[k]) {
			x.last[k] = t
		}
	}
	for k, t := range x.last {
		buf.WriteString(strconv.FormatInt(t.UnixNano(), 10))
		buf.WriteByte(' ')
		buf.WriteString(k)
		buf.WriteByte('\n')
	}
	x.dirty = false
	forgotten := x.forgotten
	x.forgotten = map[string]bool{}
	x.mu.Unlock()
	if err := s.writeAtomic(servedFile, buf.Bytes()); err != nil {
		x.mu.Lock()
		x.dirty = true
		for k := range forgotten {
			if _, ok := x.last[k]; !ok {
				x.forgotten[k] = true
			}
		}
		x.mu.Unlock()
		return err
	}
	return nil
}

// isNotDir reports a lookup that went through a regular file.
func isNotDir(err error) bool { return errors.Is(err, syscall.ENOTDIR) }
