package distcache

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"
)

// meta is what the store keeps beside an object fetched from upstream, for
// revalidation and headers: below state/meta/<key>, as JSON.
type meta struct {
	ETag         string    `json:"etag,omitempty"`
	LastModified string    `json:"last_modified,omitempty"` // as upstream sent it
	ContentType  string    `json:"content_type,omitempty"`
	Fetched      time.Time `json:"fetched"` // last download or successful revalidation
}

func metaName(key string) string { return stateDir + "/meta/" + key }

// readMeta returns the metadata of key; ok is false when there is none
// (or it is unreadable, which only costs a revalidation).
func (s *Store) readMeta(key string) (meta, bool) {
	var m meta
	b, err := s.root.ReadFile(metaName(key))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) && !isNotDir(err) {
			s.log.Warn("cannot read object metadata", "key", key, "err", err)
		}
		return m, false
	}
	if err := json.Unmarshal(b, &m); err != nil {
		s.log.Warn("damaged object metadata", "key", key, "err", err)
		return meta{}, false
	}
	return m, true
}

func (s *Store) writeMeta(key string, m meta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("distcache: metadata of %s: %w", key, err)
	}
	return s.writeAtomic(metaName(key), b)
}
