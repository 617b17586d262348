package binpkg

import (
	"bytes"
	"context"
	"crypto/sha256"
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
// changes. When the upstream index cannot be had, the last merged index is
// served while the local side is unchanged, else the local index alone.
// Call it before serving.
func (h *Handler) SetUpstream(f UpstreamIndex) { h.up = &merger{fetch: f} }

// merger builds and keeps the merged index.
type merger struct {
	fetch UpstreamIndex

	mu       sync.Mutex
	key      [2][sha256.Size]byte // digests of the local and upstream indexes merged
	merged   *memIndex
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
	up, upErr := m.read(ctx)
	m.mu.Lock()
	defer m.mu.Unlock()
	lk := sha256.Sum256(local)
	if upErr != nil {
		if m.merged != nil && m.key[0] == lk {
			h.log.Warn("binpkg: upstream index unavailable, serving the last merged one", "err", upErr)
			return m.merged.answer(gz), true
		}
		h.log.Warn("binpkg: upstream index unavailable, serving the local one", "err", upErr)
		return answer{}, false
	}
	key := [2][sha256.Size]byte{lk, sha256.Sum256(up)}
	if m.merged == nil || m.key != key {
		mi, err := m.merge(local, up)
		if err != nil {
			h.log.Warn("binpkg: cannot merge the upstream index, serving the local one", "err", err)
			return answer{}, false
		}
		m.merged, m.key = mi, key
	}
	return m.merged.answer(gz), true
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
