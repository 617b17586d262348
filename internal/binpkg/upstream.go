package binpkg

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"strconv"
	"sync"
	"time"

	"github.com/lanmirror/lanmirror/internal/gentoo"
)

// UpstreamIndex returns the Packages index (plain text) of an upstream
// binhost whose package files are served under the same mount, e.g. from
// lanmirror's cache of that binhost.
type UpstreamIndex func(ctx context.Context) (io.ReadCloser, error)

// maxUpstreamIndex bounds the upstream index read into memory (Gentoo's
// official binhost index is a few tens of MiB).
const maxUpstreamIndex = 512 << 20

// SetUpstream makes Packages and Packages.gz list the upstream binhost's
// packages too: every local entry, then each upstream entry whose PATH no
// local entry has (local files win, as the mount serves them first). The
// merged index gets its own TIMESTAMP, raised whenever either side
// changes. When the upstream index cannot be had or read, the last good one
// is merged (before there is one, the local index is served alone).
// Call it before serving.
func (h *Handler) SetUpstream(f UpstreamIndex) { h.up = &merger{fetch: f} }

// merger builds and keeps the merged index.
type merger struct {
	fetch UpstreamIndex

	mu       sync.Mutex
	key      [2][sha256.Size]byte // digests of the local and upstream indexes merged
	merged   *memIndex
	lastUp   []byte            // the upstream index last merged
	badUp    [sha256.Size]byte // digest of an upstream index that failed to merge
	lastTime int64
}

// merged answers Packages or Packages.gz with the merged index; false
// when it could not (the caller serves the local index).
func (h *Handler) merged(ctx context.Context, gz bool) (answer, bool) {
	a, err := h.ix.index(false)
	if err != nil {
		return answer{}, false
	}
	local := a.body
	if a.file != "" {
		if local, err = h.root.ReadFile(a.file); err != nil {
			return answer{}, false
		}
	}
	m := h.up
	up, err := m.read(ctx)
	m.mu.Lock()
	defer m.mu.Unlock()
	lk := sha256.Sum256(local)
	if err == nil {
		uk := sha256.Sum256(up)
		if uk != m.badUp {
			if err = m.update(local, lk, up, uk); err == nil {
				return m.merged.answer(gz), true
			}
			m.badUp = uk
			h.log.Warn("binpkg: cannot merge the upstream index", "err", err)
		} else {
			err = errors.New("upstream index unusable (logged before)")
		}
	}
	if m.lastUp == nil {
		h.log.Warn("binpkg: no upstream index to merge, serving the local one", "err", err)
		return answer{}, false
	}
	h.log.Warn("binpkg: merging the last upstream index read", "err", err)
	if err := m.update(local, lk, m.lastUp, sha256.Sum256(m.lastUp)); err != nil {
		return answer{}, false
	}
	return m.merged.answer(gz), true
}

// update makes m.merged the merge of local and up (digests lk and uk),
// building it unless it is that already.
func (m *merger) update(local []byte, lk [sha256.Size]byte, up []byte, uk [sha256.Size]byte) error {
	key := [2][sha256.Size]byte{lk, uk}
	if m.merged != nil && m.key == key {
		return nil
	}
	mi, err := m.merge(local, up)
	if err != nil {
		return err
	}
	m.merged, m.key, m.lastUp = mi, key, up
	return nil
}

// read fetches the upstream index, bounded.
func (m *merger) read(ctx context.Context) ([]byte, error) {
	rc, err := m.fetch(ctx)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxUpstreamIndex+1))
	if err != nil {
		return nil, fmt.Errorf("read upstream index: %w", err)
	}
	if len(b) > maxUpstreamIndex {
		return nil, fmt.Errorf("upstream index larger than %d bytes", maxUpstreamIndex)
	}
	return b, nil
}

// merge builds the merged index of the local and upstream ones.
func (m *merger) merge(local, up []byte) (*memIndex, error) {
	lix, err := gentoo.ReadPackages(bytes.NewReader(local))
	if err != nil {
		return nil, fmt.Errorf("local index: %w", err)
	}
	uix, err := gentoo.ReadPackages(bytes.NewReader(up))
	if err != nil {
		return nil, fmt.Errorf("upstream index: %w", err)
	}
	if v := uix.Header[gentoo.PkgKeyVersion]; v != gentoo.PackagesVersion {
		return nil, fmt.Errorf("upstream index VERSION %q", v)
	}
	out := &gentoo.PackagesIndex{Header: maps.Clone(lix.Header)}
	paths := map[string]bool{}
	for _, e := range lix.Packages {
		paths[pathOf(e)] = true
		out.Packages = append(out.Packages, e)
	}
	for _, e := range uix.Packages {
		if paths[pathOf(e)] {
			continue
		}
		// Keys the upstream entries inherit from their own header.
		for _, k := range []string{"CHOST", gentoo.PkgKeyRepo} {
			if e[k] == "" && uix.Header[k] != "" {
				e[k] = uix.Header[k]
			}
		}
		out.Packages = append(out.Packages, e)
	}
	// Other upstream header keys (USE_EXPAND..., ARCH) where the local
	// header has none; not the keys entries inherit, which stay local.
	for k, v := range uix.Header {
		switch k {
		case gentoo.PkgKeyURI, "CHOST", gentoo.PkgKeyRepo:
			continue
		}
		if _, ok := out.Header[k]; !ok {
			out.Header[k] = v
		}
	}
	t := time.Now().Unix()
	for _, s := range []string{lix.Header[gentoo.PkgKeyTimestamp], uix.Header[gentoo.PkgKeyTimestamp]} {
		if ts, err := strconv.ParseInt(s, 10, 64); err == nil && ts > t {
			t = ts
		}
	}
	if t <= m.lastTime {
		t = m.lastTime + 1
	}
	m.lastTime = t
	out.Stamp(time.Unix(t, 0))
	var buf bytes.Buffer
	if _, err := out.WriteTo(&buf); err != nil {
		return nil, err
	}
	mod := time.Unix(t, 0)
	return &memIndex{modTime: mod, plain: buf.Bytes(), gz: gzipBytes(buf.Bytes(), mod)}, nil
}

// pathOf is an entry's package path (Portage's default when PATH is absent).
func pathOf(e gentoo.PackageFields) string {
	if p := e[gentoo.PkgKeyPath]; p != "" {
		return p
	}
	return e[gentoo.PkgKeyCPV] + extTbz2
}

// answer serves the plain or gzipped index.
func (mi *memIndex) answer(gz bool) answer {
	if gz {
		return answer{body: mi.gz, modTime: mi.modTime}
	}
	return answer{body: mi.plain, modTime: mi.modTime}
}
