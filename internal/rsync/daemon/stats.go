package daemon

import (
	"sync/atomic"

	"github.com/lanmirror/lanmirror/internal/status"
)

// sessionStats counts the server's sessions for the status page.
type sessionStats struct {
	active, total, bytes atomic.Int64
}

// Sessions reports the sessions in progress (past the module's connection
// limit), those started since New, and the bytes sent to clients.
func (s *Server) Sessions() status.Rsync {
	return status.Rsync{Active: s.stats.active.Load(), Total: s.stats.total.Load(), Bytes: s.stats.bytes.Load()}
}
