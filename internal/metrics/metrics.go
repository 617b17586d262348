// Package metrics holds lanmirror's Prometheus metrics, shared by the HTTP
// cache, the rsync daemon and the tree mirror, and the handler that exposes
// them on /metrics.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry holds every lanmirror metric (and the Go and process collectors).
var Registry = prometheus.NewRegistry()

var (
	// HTTPRequests counts HTTP requests by cache result (HIT, MISS, JOIN,
	// ALIAS, DENY, ERROR...) and status code.
	HTTPRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lanmirror_http_requests_total",
		Help: "HTTP requests by cache result and status code.",
	}, []string{"result", "code"})
	// HTTPBytes counts body bytes sent to HTTP clients.
	HTTPBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "lanmirror_http_sent_bytes_total",
		Help: "Body bytes sent to HTTP clients.",
	})
	// UpstreamBytes counts bytes downloaded from upstream mirrors and origins.
	UpstreamBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "lanmirror_upstream_received_bytes_total",
		Help: "Bytes downloaded from upstream mirrors and origins.",
	})
	// UpstreamFetches counts upstream downloads by result (ok, error, digest_mismatch, not_found).
	UpstreamFetches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lanmirror_upstream_fetches_total",
		Help: "Upstream downloads by result.",
	}, []string{"result"})
	// UpstreamErrors counts failed upstream requests by mirror (its base
	// URL, or "origin" for other URLs) and error ("network" or the HTTP
	// status).
	UpstreamErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lanmirror_upstream_errors_total",
		Help: "Failed upstream requests by mirror and error (network or HTTP status).",
	}, []string{"mirror", "error"})
	// UpstreamLatency is the time from an upstream request until its
	// answer's headers, by mirror.
	UpstreamLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "lanmirror_upstream_latency_seconds",
		Help:    "Time from an upstream request to its response headers, by mirror.",
		Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
	}, []string{"mirror"})
	// ActiveDownloads is the number of upstream downloads in progress.
	ActiveDownloads = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "lanmirror_upstream_active_downloads",
		Help: "Upstream downloads in progress.",
	})
	// RsyncSessions counts rsync sessions by module and result (ok, error, denied, busy).
	RsyncSessions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lanmirror_rsync_sessions_total",
		Help: "rsync daemon sessions by module and result.",
	}, []string{"module", "result"})
	// RsyncActive is the number of rsync sessions in progress, by module.
	RsyncActive = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lanmirror_rsync_active_sessions",
		Help: "rsync sessions in progress by module.",
	}, []string{"module"})
	// RsyncBytes counts bytes written to rsync clients.
	RsyncBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "lanmirror_rsync_sent_bytes_total",
		Help: "Bytes written to rsync clients.",
	})
	// TreeSyncs counts tree syncs from upstream by result (published, unchanged, error).
	TreeSyncs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lanmirror_tree_syncs_total",
		Help: "Tree syncs from upstream by result.",
	}, []string{"result"})
	// CacheVerified counts cached distfiles re-checked against the tree's
	// Manifests (verify-cache) by result (ok, quarantined, unknown, error).
	CacheVerified = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lanmirror_cache_verified_files_total",
		Help: "Cached distfiles re-hashed against the tree's Manifests, by result (ok, quarantined, unknown, error).",
	}, []string{"result"})
	// TreePublished is the Unix time of the last published tree snapshot.
	TreePublished = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "lanmirror_tree_published_timestamp_seconds",
		Help: "Unix time the current tree snapshot was published.",
	})
)

func init() {
	Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		HTTPRequests, HTTPBytes, UpstreamBytes, UpstreamFetches, UpstreamErrors, UpstreamLatency, ActiveDownloads,
		RsyncSessions, RsyncActive, RsyncBytes, TreeSyncs, TreePublished, CacheVerified,
	)
}

// Handler serves the metrics in the Prometheus text format: Registry's
// and those of the extra gatherers (metrics of one server instance).
func Handler(extra ...prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(append(prometheus.Gatherers{Registry}, extra...), promhttp.HandlerOpts{})
}
