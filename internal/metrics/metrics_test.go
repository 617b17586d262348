package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandlerExposesCounters(t *testing.T) {
	HTTPRequests.WithLabelValues("HIT", "200").Inc()
	RsyncSessions.WithLabelValues("gentoo-portage", "ok").Add(2)
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`lanmirror_http_requests_total{code="200",result="HIT"} 1`,
		`lanmirror_rsync_sessions_total{module="gentoo-portage",result="ok"} 2`,
		"go_goroutines",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics output lacks %q", want)
		}
	}
}
