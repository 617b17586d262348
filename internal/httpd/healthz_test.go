package httpd

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
)

// TestHealthz: /healthz answers 200 "ok" (curl), and 503 with the reason
// while Options.Health reports a problem (object storage unreachable).
func TestHealthz(t *testing.T) {
	var broken atomic.Bool
	e := startServer(t, Options{Health: func(context.Context) error {
		if broken.Load() {
			return errors.New("object storage: connection refused")
		}
		return nil
	}})
	code, body := e.status(e.url + "/healthz")
	if code != 200 || body != "ok\n" {
		t.Fatalf("/healthz = %d %q, want 200 ok", code, body)
	}
	broken.Store(true)
	code, body = e.status(e.url + "/healthz")
	if code != 503 || !strings.Contains(body, "connection refused") {
		t.Fatalf("/healthz while unhealthy = %d %q, want 503 with the reason", code, body)
	}
}
