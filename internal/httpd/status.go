package httpd

import (
	"fmt"
	"net/http"
	"time"

	"github.com/lanmirror/lanmirror/internal/metrics"
	dto "github.com/prometheus/client_model/go"
)

// serveStatus writes a small plain-text status page at /: uptime, cache
// size and file count, active upstream downloads, and the most recent
// requests.
func (s *Server) serveStatus(w http.ResponseWriter, r *http.Request) {
	setOutcome(w, "LOCAL")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	fmt.Fprintf(w, "lanmirror\n\nuptime: %s\n", time.Since(s.start).Truncate(time.Second))
	if s.opt.Stats != nil {
		size, files := s.opt.Stats()
		fmt.Fprintf(w, "cache: %d files, %d bytes (%.1f MiB)\n", files, size, float64(size)/(1<<20))
	}
	var m dto.Metric
	if err := metrics.ActiveDownloads.Write(&m); err == nil && m.Gauge != nil {
		fmt.Fprintf(w, "active downloads: %d\n", int64(m.Gauge.GetValue()))
	}
	fmt.Fprintf(w, "\nendpoints: /distfiles/ (GENTOO_MIRRORS), forward proxy (http_proxy), /fetch/<name>?uri=<URI>, /binpkgs/, /metrics\n")
	fmt.Fprintf(w, "\nrecent requests (newest first):\n")
	for _, l := range s.recent.list() {
		fmt.Fprint(w, l)
	}
}
