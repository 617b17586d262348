package distcache

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/lanmirror/lanmirror/internal/gentoo"
)

// How long a mirror's layout is remembered, by how it was learned.
const (
	layoutKeep       = 24 * time.Hour // read (or a 404: flat), like Portage's daily refresh
	layoutRetryAfter = time.Minute    // upstream error: flat for now, ask again soon
	layoutTimeout    = 20 * time.Second
)

// mirror is one upstream distfiles mirror and its remembered layout.
type mirror struct {
	base string // without trailing slash

	mu      sync.Mutex
	layout  gentoo.Layout
	until   time.Time     // layout valid until
	loading chan struct{} // non-nil while one goroutine reads layout.conf
}

// layoutOf returns m's layout, reading BASE/distfiles/layout.conf the
// first time (one request however many callers wait for it).
func (c *Cache) layoutOf(ctx context.Context, m *mirror) gentoo.Layout {
	m.mu.Lock()
	for {
		if time.Now().Before(m.until) {
			l := m.layout
			m.mu.Unlock()
			return l
		}
		if m.loading == nil {
			break
		}
		ch := m.loading
		m.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return gentoo.Layout{}
		}
		m.mu.Lock()
	}
	ch := make(chan struct{})
	m.loading = ch
	m.mu.Unlock()

	l, keep := c.fetchLayout(ctx, m.base)

	m.mu.Lock()
	m.layout, m.until, m.loading = l, time.Now().Add(keep), nil
	m.mu.Unlock()
	close(ch)
	return l
}

func (c *Cache) fetchLayout(ctx context.Context, base string) (gentoo.Layout, time.Duration) {
	u := base + "/distfiles/layout.conf"
	l, keep, err := c.readLayout(ctx, u)
	if err != nil {
		c.log.Warn("mirror layout unknown, assuming flat", "url", u, "err", err)
		return gentoo.Layout{}, keep
	}
	c.log.Info("mirror layout", "mirror", base, "layout", l.String())
	return l, keep
}

func (c *Cache) readLayout(ctx context.Context, u string) (gentoo.Layout, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, layoutTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return gentoo.Layout{}, layoutKeep, err
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := c.client.Do(req)
	if err != nil {
		return gentoo.Layout{}, layoutRetryAfter, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return gentoo.Layout{}, layoutKeep, nil // no layout.conf: flat
	case resp.StatusCode != http.StatusOK:
		return gentoo.Layout{}, layoutRetryAfter, fmt.Errorf("HTTP %s", resp.Status)
	}
	l, err := gentoo.ParseLayout(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return gentoo.Layout{}, layoutKeep, err
	}
	return l, layoutKeep, nil
}
