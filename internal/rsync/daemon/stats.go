package daemon

import (
	"sync/atomic"

	"github.com/lanmirror/lanmirror/internal/status"
)

// SessionStats counts sessions for the status page. One value may be
// shared (Config.Sessions) by the daemons that succeed each other when
// the modules are reloaded, so the totals survive a reload.
type SessionStats struct {
	active, total, bytes atomic.Int64
}

// Snapshot reports the sessions in progress (past the module's connection
// limit), those started, and the bytes sent to clients.
func (st *SessionStats) Snapshot() status.Rsync {
	return status.Rsync{Active: st.active.Load(), Total: st.total.Load(), Bytes: st.bytes.Load()}
}

// Sessions reports the sessions of s (and of the other daemons sharing
// its SessionStats).
func (s *Server) Sessions() status.Rsync { return s.stats.Snapshot() }
