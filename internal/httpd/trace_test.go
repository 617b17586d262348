package httpd

import (
	"context"
	"net/http"
	"net/http/httptrace"
)

// httptraceReused counts, in *n, the requests that reuse a connection.
func httptraceReused(req *http.Request, n *int) context.Context {
	return httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			if info.Reused {
				*n++
			}
		},
	})
}
