package httpd

import (
	"fmt"
	"html/template"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lanmirror/lanmirror/internal/status"
	"github.com/prometheus/client_golang/prometheus"
)

// hitStats counts how cacheable requests were answered, for the hit ratio
// and the bytes the cache saved (sent without downloading them).
type hitStats struct {
	hits, misses, saved atomic.Int64
}

// count records one finished request.
func (h *hitStats) count(outcome string, status int, bytes int64) {
	if status < 200 || status >= 300 {
		return
	}
	switch outcome {
	case "HIT", "JOIN", "REVALIDATED":
		h.hits.Add(1)
		h.saved.Add(bytes)
	case "MISS":
		h.misses.Add(1)
	}
}

// statusView is what the status page shows, in both forms.
type statusView struct {
	Uptime     string
	HasCache   bool
	CacheFiles int
	CacheBytes int64
	Hits       int64
	Misses     int64
	HitRatio   string // "50%", "-" before any cacheable request
	Saved      int64
	Downloads  []downloadView
	HasTree    bool
	Tree       status.Tree
	TreeTime   time.Time // timestamp.chk, else the publication
	TreeAge    string
	HasRsync   bool
	Rsync      status.Rsync
	Recent     []string
	Now        time.Time
}

type downloadView struct {
	Name    string
	Written int64
	Size    int64 // -1 unknown
	Percent string
}

// view gathers the figures for one rendering.
func (s *Server) view() statusView {
	now := time.Now()
	v := statusView{Now: now, Uptime: roundDuration(now.Sub(s.start))}
	src := s.opt.Status.Sources()
	if src.Cache == nil && s.opt.Stats != nil {
		src.Cache = s.opt.Stats
	}
	if src.Cache != nil {
		v.HasCache = true
		v.CacheBytes, v.CacheFiles = src.Cache()
	}
	v.Hits, v.Misses, v.Saved = s.hits.hits.Load(), s.hits.misses.Load(), s.hits.saved.Load()
	v.HitRatio = "-"
	if n := v.Hits + v.Misses; n > 0 {
		v.HitRatio = fmt.Sprintf("%.0f%%", 100*float64(v.Hits)/float64(n))
	}
	if src.Downloads != nil {
		for _, d := range src.Downloads() {
			dv := downloadView{Name: d.Name, Written: d.Written, Size: d.Size}
			if d.Size > 0 {
				dv.Percent = fmt.Sprintf("%.0f%%", 100*float64(d.Written)/float64(d.Size))
			}
			v.Downloads = append(v.Downloads, dv)
		}
	}
	if src.Tree != nil {
		v.Tree, v.HasTree = src.Tree()
		v.TreeTime = v.Tree.Timestamp
		if v.TreeTime.IsZero() {
			v.TreeTime = v.Tree.Published
		}
		if !v.TreeTime.IsZero() {
			v.TreeAge = roundDuration(now.Sub(v.TreeTime))
		}
	}
	if src.Rsync != nil {
		v.HasRsync = true
		v.Rsync = src.Rsync()
	}
	for _, l := range s.recent.list() {
		v.Recent = append(v.Recent, strings.TrimRight(l, "\n"))
	}
	return v
}

// serveStatus writes the status page at /: HTML for browsers (a request
// that accepts text/html), the plain-text form for everyone else (curl,
// scripts).
func (s *Server) serveStatus(w http.ResponseWriter, r *http.Request) {
	setOutcome(w, "LOCAL")
	html := wantsHTML(r)
	if html {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Vary", "Accept")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	v := s.view()
	if html {
		if err := statusHTML.Execute(w, v); err != nil {
			s.log.Warn("status page", "err", err)
		}
		return
	}
	writeStatusText(w, v)
}

// wantsHTML reports whether the client asks for HTML: browsers list
// text/html in Accept; curl sends */* and gets text.
func wantsHTML(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(mt), "text/html") && !strings.Contains(strings.ReplaceAll(params, " ", ""), "q=0") {
			return true
		}
	}
	return false
}

// writeStatusText is the plain-text page. Its first lines keep the form
// of earlier versions (uptime, cache, active downloads, endpoints, recent
// requests) for scripts that read them.
func writeStatusText(w io.Writer, v statusView) {
	fmt.Fprintf(w, "lanmirror\n\nuptime: %s\n", v.Uptime)
	if v.HasCache {
		fmt.Fprintf(w, "cache: %d files, %d bytes (%.1f MiB)\n", v.CacheFiles, v.CacheBytes, float64(v.CacheBytes)/(1<<20))
	}
	fmt.Fprintf(w, "active downloads: %d\n", len(v.Downloads))
	for _, d := range v.Downloads {
		if d.Size >= 0 {
			fmt.Fprintf(w, "  %s: %d of %d bytes (%s)\n", d.Name, d.Written, d.Size, d.Percent)
		} else {
			fmt.Fprintf(w, "  %s: %d bytes (size unknown)\n", d.Name, d.Written)
		}
	}
	fmt.Fprintf(w, "hit ratio: %s (%d hits, %d misses)\n", v.HitRatio, v.Hits, v.Misses)
	fmt.Fprintf(w, "bytes saved: %d (%s)\n", v.Saved, humanBytes(v.Saved))
	if v.HasTree {
		fmt.Fprintf(w, "tree: %s", v.Tree.Path)
		if v.Tree.Snapshot != "" {
			fmt.Fprintf(w, " (snapshot %s)", v.Tree.Snapshot)
		}
		if !v.TreeTime.IsZero() {
			fmt.Fprintf(w, ", timestamp %s, age %s", v.TreeTime.UTC().Format(time.RFC3339), v.TreeAge)
		}
		fmt.Fprintln(w)
	}
	if v.HasRsync {
		fmt.Fprintf(w, "rsync sessions: %d active, %d total, %d bytes sent\n", v.Rsync.Active, v.Rsync.Total, v.Rsync.Bytes)
	}
	fmt.Fprintf(w, "\nendpoints: /distfiles/ (GENTOO_MIRRORS), forward proxy (http_proxy), /fetch/<name>?uri=<URI>, /binpkgs/, /metrics\n")
	fmt.Fprintf(w, "\nrecent requests (newest first):\n")
	for _, l := range v.Recent {
		fmt.Fprintln(w, l)
	}
}

// roundDuration prints d to the second, or to the minute beyond an hour.
func roundDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	if d >= time.Hour {
		return d.Truncate(time.Minute).String()
	}
	return d.Truncate(time.Second).String()
}

// humanBytes prints n in binary units.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, i := float64(n), -1
	for f >= unit && i < 5 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", f, "KMGTPE"[i])
}

var statusHTML = template.Must(template.New("status").Funcs(template.FuncMap{
	"bytes": humanBytes,
	"utc":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lanmirror status</title>
<style>
body{font-family:system-ui,sans-serif;max-width:60rem;margin:1.5rem auto;padding:0 1rem;color:#222;background:#fafafa}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.1rem;margin:1.5rem 0 .5rem;border-bottom:1px solid #ddd}
.sub{color:#666;margin-top:0}
.cards{display:flex;flex-wrap:wrap;gap:.8rem}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem;min-width:11rem}
.card .v{font-size:1.6rem;font-weight:600}.card .l{color:#666;font-size:.85rem}
table{border-collapse:collapse;width:100%;background:#fff}
td,th{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #eee;vertical-align:middle}
progress{width:14rem;height:1rem}
pre{background:#fff;border:1px solid #ddd;padding:.5rem;overflow-x:auto;font-size:.8rem}
.none{color:#888}
</style>
</head>
<body>
<h1>lanmirror</h1>
<p class="sub">up {{.Uptime}} &middot; {{utc .Now}}</p>
<div class="cards">
<div class="card" id="hit-ratio"><div class="v">{{.HitRatio}}</div><div class="l">hit ratio ({{.Hits}} hits, {{.Misses}} misses)</div></div>
<div class="card" id="saved"><div class="v">{{bytes .Saved}}</div><div class="l">served from the cache</div></div>
{{- if .HasCache}}
<div class="card" id="cache"><div class="v">{{bytes .CacheBytes}}</div><div class="l">cache, {{.CacheFiles}} files</div></div>
{{- end}}
{{- if .HasRsync}}
<div class="card" id="rsync"><div class="v">{{.Rsync.Active}} active</div><div class="l">rsync sessions, {{.Rsync.Total}} in total, {{bytes .Rsync.Bytes}} sent</div></div>
{{- end}}
</div>

<h2>Tree</h2>
{{- if .HasTree}}
<table id="tree">
<tr><th>served from</th><td>{{.Tree.Path}}</td></tr>
{{- if .Tree.Snapshot}}
<tr><th>snapshot</th><td>{{.Tree.Snapshot}}{{if not .Tree.Published.IsZero}}, published {{utc .Tree.Published}}{{end}}</td></tr>
{{- end}}
{{- if not .TreeTime.IsZero}}
<tr><th>timestamp</th><td>{{utc .TreeTime}}</td></tr>
<tr><th>age</th><td id="tree-age">{{.TreeAge}}</td></tr>
{{- end}}
</table>
{{- else}}
<p class="none">no tree served</p>
{{- end}}

<h2>Downloads in progress</h2>
{{- if .Downloads}}
<table id="downloads">
<tr><th>file</th><th>progress</th><th>received</th></tr>
{{- range .Downloads}}
<tr><td>{{.Name}}</td>
<td>{{if ge .Size 0}}<progress value="{{.Written}}" max="{{.Size}}">{{.Percent}}</progress> {{.Percent}}{{else}}<progress></progress>{{end}}</td>
<td>{{bytes .Written}}{{if ge .Size 0}} of {{bytes .Size}}{{end}}</td></tr>
{{- end}}
</table>
{{- else}}
<p class="none">none</p>
{{- end}}

<h2>Recent requests</h2>
{{- if .Recent}}
<pre id="recent">{{range .Recent}}{{.}}
{{end}}</pre>
{{- else}}
<p class="none">none yet</p>
{{- end}}

<p class="sub">Client setup: <code>GENTOO_MIRRORS</code> &rarr; /distfiles/, <code>http_proxy</code>, <code>/fetch/&lt;name&gt;?uri=&lt;URI&gt;</code>, <code>/binpkgs/</code>; metrics at <a href="/metrics">/metrics</a>; <code>curl -H 'Accept: text/plain'</code> for this page as text.</p>
</body>
</html>
`))

// treeAgeCollector exposes lanmirror_tree_age_seconds from the status
// sources, only while a tree with a known time is served.
type treeAgeCollector struct {
	board *status.Board
	desc  *prometheus.Desc
}

func newTreeAgeCollector(b *status.Board) *treeAgeCollector {
	return &treeAgeCollector{board: b, desc: prometheus.NewDesc("lanmirror_tree_age_seconds",
		"Age of the served tree: now minus its metadata/timestamp.chk (else its publication).", nil, nil)}
}

func (c *treeAgeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *treeAgeCollector) Collect(ch chan<- prometheus.Metric) {
	src := c.board.Sources()
	if src.Tree == nil {
		return
	}
	t, ok := src.Tree()
	if !ok {
		return
	}
	at := t.Timestamp
	if at.IsZero() {
		at = t.Published
	}
	if at.IsZero() {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, time.Since(at).Seconds())
}
