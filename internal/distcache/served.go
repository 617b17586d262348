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
	mu     sync.Mutex
	last   map[string]time.Time
	dirty  bool
	saveMu sync.Mutex // one writer of the file at a time
}

func loadServed(root *os.Root, log *slog.Logger) (*servedIndex, error) {
	idx := &servedIndex{last: map[string]time.Time{}}
	f, err := root.Open(servedFile)
	if errors.Is(err, fs.ErrNotExist) {
		return idx, nil
	}
	if err != nil {
		return nil, fmt.Errorf("distcache: open served-time index: %w", err)
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
		idx.last[key] = time.Unix(0, n)
	}
	if err := sc.Err(); err != nil {
		// A damaged index loses only served times, never objects.
		log.Warn("served-time index damaged; keeping what was read", "err", err)
	}
	if bad > 0 {
		log.Warn("served-time index: skipped bad lines", "count", bad)
	}
	return idx, nil
}

func (x *servedIndex) mark(key string, t time.Time) {
	x.mu.Lock()
	x.last[key] = t
	x.dirty = true
	x.mu.Unlock()
}

func (x *servedIndex) forget(key string) {
	x.mu.Lock()
	if _, ok := x.last[key]; ok {
		delete(x.last, key)
		x.dirty = true
	}
	x.mu.Unlock()
}

func (x *servedIndex) get(key string) time.Time {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.last[key]
}

// flush writes the index if it changed since the last write.
func (x *servedIndex) flush(s *Store) error {
	x.saveMu.Lock()
	defer x.saveMu.Unlock()
	x.mu.Lock()
	if !x.dirty {
		x.mu.Unlock()
		return nil
	}
	var buf bytes.Buffer
	for k, t := range x.last {
		buf.WriteString(strconv.FormatInt(t.UnixNano(), 10))
		buf.WriteByte(' ')
		buf.WriteString(k)
		buf.WriteByte('\n')
	}
	x.dirty = false
	x.mu.Unlock()
	if err := s.writeAtomic(servedFile, buf.Bytes()); err != nil {
		x.mu.Lock()
		x.dirty = true
		x.mu.Unlock()
		return err
	}
	return nil
}

// isNotDir reports a lookup that went through a regular file.
func isNotDir(err error) bool { return errors.Is(err, syscall.ENOTDIR) }
