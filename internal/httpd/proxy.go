package httpd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/lanmirror/lanmirror/internal/distcache"
)

// isProxyRequest reports whether r is in absolute form
// ("GET http://host/path HTTP/1.1"), as clients send to an http_proxy.
func isProxyRequest(r *http.Request) bool {
	return r.URL.Scheme != "" || r.URL.Host != ""
}

// serveProxy answers a forward-proxy request.
//
//   - A URL naming this server itself (clients that route everything
//     through http_proxy, binhost included) is served by the local routes.
//   - A path ending in a distfile path (".../distfiles/<name>", or with
//     hash directories ".../distfiles/<hh>/<name>"), on any host, is served
//     from the distfiles cache by name: the cache, then the configured
//     mirrors, then the requested URL itself, but only when the Policy
//     allows its host. ".../distfiles/layout.conf" is lanmirror's own.
//   - Any other http or https URL allowed by the Policy is cached as a
//     volatile object (revalidated upstream after the freshness time) under
//     "urls/<host>[_<port>]/<path>". A query string is part of the
//     identity: "@q<first 16 hex digits of its SHA-256>" is appended to the
//     last key segment. A path ending in "/" is stored as ".../@index", and
//     segments starting with "." get an "@" prefix, so no key names a
//     hidden file.
//
// Nothing of the client's request is forwarded (the cache makes its own
// upstream requests), so hop-by-hop and proxy headers (Connection,
// Proxy-Connection, Proxy-Authorization, TE...) never reach upstream, and
// the answer carries only lanmirror's own headers.
func (s *Server) serveProxy(w http.ResponseWriter, r *http.Request) {
	u := *r.URL
	u.Scheme = strings.ToLower(u.Scheme)
	if u.Scheme == "" {
		u.Scheme = "http"
	}
	if u.Hostname() == "" {
		textError(w, http.StatusBadRequest, "400 bad proxy request: no host in the URL\n")
		return
	}
	if s.isSelf(r, &u) {
		r2 := r.Clone(r.Context())
		r2.URL = &url.URL{Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery}
		s.serveLocal(w, r2)
		return
	}
	segs, err := splitPath(pathOrSlash(u.EscapedPath()))
	if err != nil {
		textError(w, http.StatusBadRequest, fmt.Sprintf("400 bad path in proxy request: %v\n", err))
		return
	}
	if name, ok := distfilePath(segs); ok {
		if name == "layout.conf" {
			s.serveLayoutConf(w, r)
			return
		}
		var origins []string
		if u.Scheme == "http" || u.Scheme == "https" {
			if err := s.opt.Policy.Check(r.Context(), &u); err == nil {
				origins = append(origins, u.String())
			} else {
				s.log.Info("distfile origin not allowed; serving from the mirrors only", "url", u.Redacted(), "reason", err)
			}
		}
		s.serveDistfile(w, r, name, origins...)
		return
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		textError(w, http.StatusNotImplemented, fmt.Sprintf("501 %s URLs are proxied only for distfile paths (.../distfiles/<name>)\n", u.Scheme))
		return
	}
	if err := s.opt.Policy.Check(r.Context(), &u); err != nil {
		setOutcome(w, "DENY")
		code := http.StatusForbidden
		if !errors.Is(err, errRefused) {
			code = http.StatusBadGateway
		}
		s.log.Warn("proxy destination refused", "client", r.RemoteAddr, "url", u.Redacted(), "err", err)
		textError(w, code, fmt.Sprintf("%d %s: %s: %v\n", code, http.StatusText(code), u.Redacted(), err))
		return
	}
	key := urlKey(&u, segs)
	b, out, err := s.opt.Cache.Get(r.Context(), Object{Key: key, Sources: []string{u.String()}, Volatile: true})
	if err != nil {
		setOutcome(w, "ERROR")
		cacheError(w, r, u.Redacted(), err)
		return
	}
	s.serveBody(w, r, b, out)
}

func pathOrSlash(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

// distfilePath finds a distfile name in a decoded path: the last segment
// after a "distfiles" segment, with at most two hash directories (short
// lower-case hex segments) between them.
func distfilePath(segs []string) (string, bool) {
	n := len(segs)
	if n < 2 || segs[n-1] == "" {
		return "", false
	}
	for dirs := 0; dirs <= 2 && n-2-dirs >= 0; dirs++ {
		if segs[n-2-dirs] != "distfiles" {
			if !isHashDir(segs[n-2-dirs]) {
				return "", false
			}
			continue
		}
		return segs[n-1], true
	}
	return "", false
}

// isHashDir reports whether seg looks like a GLEP 75 hash directory.
func isHashDir(seg string) bool {
	if len(seg) == 0 || len(seg) > 8 {
		return false
	}
	for _, c := range []byte(seg) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// urlKey is the store key of a proxied URL (see serveProxy).
func urlKey(u *url.URL, segs []string) string {
	host := strings.ToLower(u.Hostname())
	if p := u.Port(); p != "" && p != portOf(&url.URL{Scheme: u.Scheme}) {
		host += "_" + p
	}
	parts := []string{strings.TrimSuffix(distcache.URLsPrefix, "/"), host}
	for _, s := range segs {
		if strings.HasPrefix(s, ".") {
			s = "@" + s
		}
		parts = append(parts, s)
	}
	if len(segs) == 0 || segs[len(segs)-1] == "" {
		if len(segs) > 0 {
			parts = parts[:len(parts)-1]
		}
		parts = append(parts, "@index")
	}
	if u.RawQuery != "" {
		sum := sha256.Sum256([]byte(u.RawQuery))
		parts[len(parts)-1] += "@q" + hex.EncodeToString(sum[:8])
	}
	return strings.Join(parts, "/")
}

// isSelf reports whether u names this server: same port as the connection
// the request came in on, and a host that is (or resolves to) its local
// address.
func (s *Server) isSelf(r *http.Request, u *url.URL) bool {
	la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false
	}
	local, err := netip.ParseAddrPort(la.String())
	if err != nil {
		return false
	}
	if portOf(u) != fmt.Sprint(local.Port()) {
		return false
	}
	lip := local.Addr().Unmap()
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.Unmap() == lip
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return false
	}
	for _, ip := range ips {
		if ip.Unmap() == lip {
			return true
		}
	}
	return false
}
