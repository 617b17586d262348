package distcache

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lanmirror/lanmirror/internal/metrics"
)

// Progress is one upstream download in progress, for the status page.
type Progress struct {
	// Key is the store key ("distfiles/<name>", "urls/<host>/<path>"...).
	Key string
	// Source is the URL bytes come from ("" before the first answer).
	Source string
	// Written is how many bytes are on disk; Size the full size, -1
	// while unknown.
	Written, Size int64
}

// Downloads lists the downloads in progress, sorted by key.
func (c *Cache) Downloads() []Progress {
	c.mu.Lock()
	ds := make([]*download, 0, len(c.active))
	for _, d := range c.active {
		ds = append(ds, d)
	}
	c.mu.Unlock()
	out := make([]Progress, 0, len(ds))
	for _, d := range ds {
		d.mu.Lock()
		out = append(out, Progress{Key: d.key, Source: d.validatorsSrc, Written: d.written, Size: d.size})
		d.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b Progress) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// upstreamLabel is the metrics label of a source URL: the configured
// mirror it belongs to, else "origin" (the hosts of fetch-through and
// proxied URLs are unbounded, so they share one label).
func (c *Cache) upstreamLabel(src string) string {
	for _, m := range *c.mirrors.Load() {
		if src == m.base || strings.HasPrefix(src, m.base+"/") {
			return m.base
		}
	}
	return "origin"
}

// observeAttempt records one request to an upstream: the time until its
// answer's headers, and whether it failed (no answer, or a status that is
// neither a success nor a 304/404/410).
func (c *Cache) observeAttempt(src string, began time.Time, resp *http.Response, err error) {
	label := c.upstreamLabel(src)
	switch {
	case err != nil:
		metrics.UpstreamErrors.WithLabelValues(label, "network").Inc()
		return
	case resp.StatusCode >= 400 && resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusGone:
		metrics.UpstreamErrors.WithLabelValues(label, strconv.Itoa(resp.StatusCode)).Inc()
	}
	metrics.UpstreamLatency.WithLabelValues(label).Observe(time.Since(began).Seconds())
}
