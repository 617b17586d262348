package distcache

import (
	"sync"
	"time"
)

// Defaults of the tainted-name memory (Options.TaintTTL, TaintMax).
const (
	DefaultTaintTTL = 24 * time.Hour
	DefaultTaintMax = 10000
)

// taintSet remembers the keys of downloads that ended or restarted after
// bytes had been handed to clients without being verified: those clients
// may hold a head that is not the object's content (a corrupt copy of the
// right size, cut when its digest failed). A Range continuation of such a
// key must not be answered with bytes of another download unless the
// client proves what it holds (If-Range with the ETag of the content
// served now). Bounded: the oldest entry goes when it is full, entries
// expire after ttl.
type taintSet struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu    sync.Mutex
	at    map[string]time.Time
	order []taintEntry // insertion order, for eviction of the oldest
}

type taintEntry struct {
	key string
	at  time.Time
}

func newTaintSet(ttl time.Duration, max int) *taintSet {
	if ttl <= 0 {
		ttl = DefaultTaintTTL
	}
	if max <= 0 {
		max = DefaultTaintMax
	}
	return &taintSet{ttl: ttl, max: max, now: time.Now, at: map[string]time.Time{}}
}

// add records key as tainted now.
func (t *taintSet) add(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.at[key] = now
	t.order = append(t.order, taintEntry{key, now})
	t.trim(now)
}

// has reports whether key was tainted less than ttl ago.
func (t *taintSet) has(key string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.at[key]
	if !ok {
		return false
	}
	if t.now().Sub(at) >= t.ttl {
		delete(t.at, key)
		return false
	}
	return true
}

// len is the number of keys remembered.
func (t *taintSet) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.trim(t.now())
	return len(t.at)
}

// trim drops expired entries and the oldest beyond max; t.mu held. An
// order entry superseded by a newer add of its key is dropped without
// touching the key.
func (t *taintSet) trim(now time.Time) {
	i := 0
	for ; i < len(t.order); i++ {
		e := t.order[i]
		cur, ok := t.at[e.key]
		stale := !ok || !cur.Equal(e.at)
		switch {
		case stale:
			continue
		case now.Sub(e.at) >= t.ttl || len(t.at) > t.max:
			delete(t.at, e.key)
			continue
		}
		break
	}
	if i > 0 {
		t.order = append(t.order[:0:0], t.order[i:]...)
	}
	if len(t.order) > 2*t.max+16 {
		// Compact superseded entries.
		kept := t.order[:0:0]
		for _, e := range t.order {
			if cur, ok := t.at[e.key]; ok && cur.Equal(e.at) {
				kept = append(kept, e)
			}
		}
		t.order = kept
	}
}
