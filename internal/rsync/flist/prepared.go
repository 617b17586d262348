package flist

import (
	"bytes"
	"context"
	"fmt"
	"sync"
)

// Prepared is a selected and encoded file list that sessions with
// identical requests share: a no-op sync of the whole module then costs
// the server little more than writing these bytes.
type Prepared struct {
	Files     []*File // the entries, in wire order (index i is Files[i])
	Encoded   []byte  // the encoded list as Encode writes it
	TotalSize int64   // sum of the sizes of regular files and symlinks
}

// maxPrepared bounds the number of prepared variants kept per module.
const maxPrepared = 8

// preparedSet holds the prepared lists of one snapshot.
type preparedSet struct {
	mu    sync.Mutex
	snap  *snapshot
	byKey map[string]*Prepared
	order []string
}

// Prepare returns the list of the whole module for req (whose Paths must
// name the module root), keeping only the entries keep accepts, encoded
// with o. Results are cached per key and per scan of the module: key
// must identify everything that shapes the result (request, rules, keep
// and encoding options). o.Checksum must be nil (checksums can change
// without the directories changing, so -c lists are not shared).
func (c *Cache) Prepare(ctx context.Context, req Request, key string, keep func(*File) bool, o EncodeOptions) (*Prepared, error) {
	if o.Checksum != nil {
		return nil, fmt.Errorf("flist: prepared lists cannot carry checksums")
	}
	if len(req.Paths) != 1 {
		return nil, fmt.Errorf("flist: prepared lists cover the module root only")
	}
	if rel, contents, err := cleanArg(req.Paths[0]); err != nil || rel != "." || !contents {
		return nil, fmt.Errorf("flist: prepared lists cover the module root only")
	}
	snap, err := c.full(ctx)
	if err != nil {
		return nil, err
	}
	ps := &c.prepared
	ps.mu.Lock()
	if ps.snap != snap {
		ps.snap, ps.byKey, ps.order = snap, map[string]*Prepared{}, nil
	}
	if p := ps.byKey[key]; p != nil {
		ps.mu.Unlock()
		return p, nil
	}
	ps.mu.Unlock()

	l, err := c.Select(ctx, req)
	if err != nil {
		return nil, err
	}
	p := &Prepared{Files: make([]*File, 0, len(l.Files))}
	for _, f := range l.Files {
		if keep != nil && !keep(f) {
			continue
		}
		p.Files = append(p.Files, f)
		if f.IsRegular() || f.IsLink() {
			p.TotalSize += f.Size
		}
	}
	var buf bytes.Buffer
	if err := (&List{Files: p.Files}).Encode(&buf, o); err != nil {
		return nil, err
	}
	p.Encoded = buf.Bytes()

	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.snap == snap { // not replaced by a newer scan meanwhile
		if _, ok := ps.byKey[key]; !ok {
			if len(ps.order) >= maxPrepared {
				delete(ps.byKey, ps.order[0])
				ps.order = ps.order[1:]
			}
			ps.order = append(ps.order, key)
		}
		ps.byKey[key] = p
	}
	return p, nil
}
