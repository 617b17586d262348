package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"

	"github.com/lanmirror/lanmirror/internal/acl"
	"github.com/lanmirror/lanmirror/internal/config"
	"github.com/lanmirror/lanmirror/internal/dirlock"
	"github.com/lanmirror/lanmirror/internal/rsync/flist"
)

// errBusy is returned by claim when the module's max connections are used.
var errBusy = errors.New("max connections reached")

// module is the live state of one served module: its access rules, the
// number of sessions in progress and the tree it currently serves.
type module struct {
	cfg    config.Module
	access acl.Access
	log    *slog.Logger

	mu     sync.Mutex
	active int
	cur    *tree // the tree new sessions get; nil until first use
}

// tree is one resolved module directory: a Root all file access goes
// through and the file list cache shared by every session on it. When the
// module path is a symlink that is switched (DATA/tree/current pointing to
// a new snapshot), a new tree is opened; the old one is closed when its
// last session ends.
type tree struct {
	target string // the resolved directory
	root   *os.Root
	lists  *flist.Cache
	refs   int
	stale  bool
}

func newModule(m config.Module, log *slog.Logger) (*module, error) {
	allow, err := acl.Parse(m.HostsAllow...)
	if err != nil {
		return nil, fmt.Errorf("module %s: hosts allow: %w", m.Name, err)
	}
	deny, err := acl.Parse(m.HostsDeny...)
	if err != nil {
		return nil, fmt.Errorf("module %s: hosts deny: %w", m.Name, err)
	}
	if m.Path == "" {
		return nil, fmt.Errorf("module %s: no path", m.Name)
	}
	if !filepath.IsAbs(m.Path) {
		abs, err := filepath.Abs(m.Path)
		if err != nil {
			return nil, fmt.Errorf("module %s: %w", m.Name, err)
		}
		m.Path = abs
	}
	return &module{
		cfg:    m,
		access: acl.Access{Allow: allow, Deny: deny},
		log:    log.With("module", m.Name),
	}, nil
}

// permit reports whether a client address may use the module. A client
// without an IP address (a pipe in tests) passes only modules without
// host rules.
func (m *module) permit(addr netip.Addr, ok bool) bool {
	if !ok {
		return m.access.Allow.Empty() && m.access.Deny.Empty()
	}
	return m.access.Permit(addr)
}

// claim takes a connection slot; it fails with errBusy when the module's
// max connections are in use (a negative maximum disables the module, as
// in rsyncd).
func (m *module) claim() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	limit := m.cfg.MaxConnections
	if limit < 0 || (limit > 0 && m.active >= limit) {
		return errBusy
	}
	m.active++
	return nil
}

// unclaim returns a slot taken by claim.
func (m *module) unclaim() {
	m.mu.Lock()
	m.active--
	m.mu.Unlock()
}

// lease is one session's use of a module tree: the tree, and a shared
// flock on its directory (internal/dirlock) that keeps the tree mirror's
// prune, in this process or another, from removing the snapshot while the
// session reads it.
type lease struct {
	*tree
	pin *dirlock.Lock
}

// errReplaced: the resolved directory was replaced while it was opened.
var errReplaced = errors.New("module directory replaced while opening it")

// acquire resolves the module path now, pins the directory it leads to
// and returns the tree serving it, opening a new Root and file list cache
// when the path points somewhere new (a switched symlink, or another
// directory renamed into place). Everything the session reads comes from
// that one directory. Release it with release.
func (m *module) acquire() (*lease, error) {
	var last error
	for range 20 {
		target, err := filepath.EvalSymlinks(m.cfg.Path)
		if err != nil {
			return nil, fmt.Errorf("resolve module path: %w", err)
		}
		pin, err := dirlock.Pin(target)
		if errors.Is(err, os.ErrNotExist) {
			// Pruned between resolving and pinning: resolve again.
			last = err
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("module path: %w", err)
		}
		dirInfo, err := pin.Stat()
		if err != nil {
			pin.Close()
			return nil, fmt.Errorf("module path: %w", err)
		}
		t, err := m.treeFor(target, dirInfo)
		if errors.Is(err, errReplaced) {
			pin.Close()
			last = err
			continue
		}
		if err != nil {
			pin.Close()
			return nil, err
		}
		return &lease{tree: t, pin: pin}, nil
	}
	return nil, fmt.Errorf("module path keeps changing: %w", last)
}

// treeFor returns the tree of the directory target (dirInfo), counting a
// reference.
func (m *module) treeFor(target string, dirInfo os.FileInfo) (*tree, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur != nil && m.cur.target == target {
		// The same name may now be another directory (renamed into place).
		if rootInfo, err := m.cur.root.Stat("."); err == nil && os.SameFile(rootInfo, dirInfo) {
			m.cur.refs++
			return m.cur, nil
		}
	}
	root, err := os.OpenRoot(target)
	if err != nil {
		return nil, fmt.Errorf("open module path: %w", err)
	}
	if rootInfo, err := root.Stat("."); err != nil || !os.SameFile(rootInfo, dirInfo) {
		root.Close()
		return nil, errReplaced
	}
	t := &tree{target: target, root: root, lists: flist.NewCache(root, m.cfg.Exclude, m.log), refs: 1}
	if old := m.cur; old != nil {
		old.stale = true
		if old.refs == 0 {
			old.lists.Close()
			old.root.Close()
		}
		m.log.Info("rsync module now serves a new tree", "path", m.cfg.Path, "target", target, "previous", old.target)
	}
	m.cur = t
	return t, nil
}

// release ends a session's use of its tree, unpinning it and closing the
// tree if it was replaced.
func (m *module) release(l *lease) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := l.tree
	t.refs--
	if t.stale && t.refs == 0 {
		t.lists.Close()
		t.root.Close()
	}
	l.pin.Close()
}

// close releases the current tree (the server is shutting down; no
// session uses it any more).
func (m *module) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur != nil && m.cur.refs == 0 {
		m.cur.root.Close()
		m.cur = nil
	}
}
