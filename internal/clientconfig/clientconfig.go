// Package clientconfig derives, from a lanmirror server's settings, the
// Portage configuration its clients need: the rsync sync-uri of the ebuild
// repository (/etc/portage/repos.conf), the distfiles mirror and the
// fetch-through commands (/etc/portage/make.conf), the local mirror entry
// (/etc/portage/mirrors) and the binary package host
// (/etc/portage/binrepos.conf). It prints them ready to paste, or as a
// shell script that writes them.
package clientconfig

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/lanmirror/lanmirror/internal/config"
)

// FetchPath is the fetch-through route of lanmirror's HTTP side:
// GET /fetch/<distfile name>?uri=<original URI>.
const FetchPath = "/fetch/"

// BinpkgsPath is where the HTTP side serves binary packages.
const BinpkgsPath = "/binpkgs"

// Server is what a client needs to know about a lanmirror server.
type Server struct {
	// Host is the name or address clients reach the server by.
	Host string
	// HTTPPort is the HTTP port; 0 when the HTTP side is off.
	HTTPPort int
	// RsyncPort is the rsync daemon's port; 0 when it is off.
	RsyncPort int
	// Module is the rsync module serving the Gentoo tree; "" when none.
	Module string
	// Binpkgs is true when binary packages are served under /binpkgs/.
	Binpkgs bool
	// LocalBinpkgs is true when they come from a local PKGDIR (usually
	// unsigned packages), not only from a cached upstream binhost.
	LocalBinpkgs bool
	// UpstreamBinhost is true when an upstream binhost is cached (and, with
	// a local PKGDIR, listed in the same index).
	UpstreamBinhost bool
}

// Options select how a Server is derived from serve settings.
type Options struct {
	// Host is the server's name as clients use it (required).
	Host string
	// Module names the rsync module of the Gentoo tree; empty: chosen
	// from the served modules (see FromServe).
	Module string
	// RsyncAddr and RsyncModules are the rsync daemon's effective listen
	// address and modules (an rsyncd.conf merged with the flags); when
	// RsyncModules is nil, the settings' own are used.
	RsyncAddr    string
	RsyncModules []config.Module
}

// FromServe derives the client's view of a server from its settings.
//
// The tree's module is opt.Module when given; otherwise a module named
// gentoo-portage, else the module whose path is the --tree directory, else
// the only module, else a module whose profiles/repo_name says gentoo.
func FromServe(cfg *config.Serve, opt Options) (Server, error) {
	host, err := clientHost(opt.Host)
	if err != nil {
		return Server{}, err
	}
	s := Server{Host: host}
	if cfg.HTTPAddr != "" {
		if s.HTTPPort, err = addrPort(cfg.HTTPAddr); err != nil {
			return Server{}, fmt.Errorf("--http %q: %w", cfg.HTTPAddr, err)
		}
	}
	mods, addr := opt.RsyncModules, opt.RsyncAddr
	if mods == nil {
		mods = cfg.RsyncModules
	}
	if addr == "" {
		addr = cfg.RsyncAddr
	}
	if cfg.RsyncAddr != "" && len(mods) > 0 {
		if s.RsyncPort, err = addrPort(addr); err != nil {
			return Server{}, fmt.Errorf("--rsync %q: %w", addr, err)
		}
		if s.Module, err = treeModule(mods, cfg.Tree, opt.Module); err != nil {
			return Server{}, err
		}
	} else if opt.Module != "" {
		return Server{}, errors.New("--module given but the server runs no rsync daemon (--rsync empty, or no module)")
	}
	if s.HTTPPort != 0 {
		s.LocalBinpkgs = cfg.Binpkgs != ""
		s.UpstreamBinhost = cfg.BinhostUpstream != ""
		s.Binpkgs = s.LocalBinpkgs || s.UpstreamBinhost
	}
	return s, nil
}

// clientHost checks a host name or address for use in URLs and config
// lines, bracketing IPv6 literals.
func clientHost(h string) (string, error) {
	h = strings.TrimSpace(h)
	if h == "" {
		return "", errors.New("--server HOST is required: the name or address clients reach this server by")
	}
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	if ip := net.ParseIP(h); ip != nil {
		if ip.To4() == nil {
			return "[" + ip.String() + "]", nil
		}
		return ip.String(), nil
	}
	if len(h) > 253 {
		return "", fmt.Errorf("--server %q: name too long", h)
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
			return "", fmt.Errorf("--server %q: want a host name or IP address (no scheme, port or path)", h)
		}
	}
	return h, nil
}

// addrPort returns the port of a listen address such as ":8080".
func addrPort(addr string) (int, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(p)
	if err != nil || n <= 0 || n > 65535 {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535", p)
	}
	return n, nil
}

// treeModule picks the module serving the Gentoo tree.
func treeModule(mods []config.Module, tree, want string) (string, error) {
	names := make([]string, 0, len(mods))
	for _, m := range mods {
		names = append(names, m.Name)
	}
	if want != "" {
		if !slices.Contains(names, want) {
			return "", fmt.Errorf("--module %s: the server has no such rsync module (it has: %s)", want, strings.Join(names, ", "))
		}
		return want, nil
	}
	if len(mods) == 0 {
		return "", nil
	}
	if slices.Contains(names, config.DefaultModuleName) {
		return config.DefaultModuleName, nil
	}
	if tree != "" {
		for _, m := range mods {
			if samePath(m.Path, tree) {
				return m.Name, nil
			}
		}
	}
	if len(mods) == 1 {
		return mods[0].Name, nil
	}
	for _, m := range mods {
		b, err := os.ReadFile(filepath.Join(m.Path, "profiles", "repo_name"))
		if err == nil && strings.TrimSpace(string(b)) == "gentoo" {
			return m.Name, nil
		}
	}
	return "", fmt.Errorf("several rsync modules (%s) and none is recognisably the Gentoo tree: choose one with --module", strings.Join(names, ", "))
}

func samePath(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	ra, err1 := filepath.EvalSymlinks(a)
	rb, err2 := filepath.EvalSymlinks(b)
	return err1 == nil && err2 == nil && ra == rb
}

// HTTPBase is the server's HTTP base URL, without a trailing slash.
func (s Server) HTTPBase() string {
	if s.HTTPPort == 80 {
		return "http://" + s.Host
	}
	return "http://" + s.Host + ":" + strconv.Itoa(s.HTTPPort)
}

// SyncURI is the rsync URI of the tree's module.
func (s Server) SyncURI() string {
	hp := s.Host
	if s.RsyncPort != 873 {
		hp += ":" + strconv.Itoa(s.RsyncPort)
	}
	return "rsync://" + hp + "/" + s.Module
}
