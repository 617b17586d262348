package httpd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// errRefused marks destinations the proxy will not reach.
var errRefused = errors.New("destination refused: lanmirror is not an open proxy")

// Policy decides which upstream destinations lanmirror may connect to.
// Configured hosts (the mirrors, the upstream binhost, --proxy-allow-host
// entries) may be reached at any address; any other host only at public
// addresses: loopback, private, link-local, unspecified, multicast,
// shared (100.64/10) and reserved addresses are refused. The check is made
// twice: before a request is accepted (Check, for a clear 403), and on the
// address actually dialed (the Dialer's Control hook), so that a name that
// resolves differently the second time (DNS rebinding) gains nothing.
type Policy struct {
	// hosts: "host" (any port) or "host:port", lower case; Update swaps it.
	hosts atomic.Pointer[map[string]bool]
}

// NewPolicy allows the hosts of the given mirror URLs (exactly their host
// and port, the scheme's default port when none is written) and the extra
// hosts ("host" for any port, "host:port", or a URL).
func NewPolicy(mirrorURLs []string, extraHosts []string) (*Policy, error) {
	hosts, err := policyHosts(mirrorURLs, extraHosts)
	if err != nil {
		return nil, err
	}
	p := &Policy{}
	p.hosts.Store(&hosts)
	return p, nil
}

// Update replaces the configured hosts (a reload); a bad entry leaves the
// policy as it was.
func (p *Policy) Update(mirrorURLs []string, extraHosts []string) error {
	hosts, err := policyHosts(mirrorURLs, extraHosts)
	if err != nil {
		return err
	}
	p.hosts.Store(&hosts)
	return nil
}

func policyHosts(mirrorURLs []string, extraHosts []string) (map[string]bool, error) {
	p := struct{ hosts map[string]bool }{hosts: map[string]bool{}}
	for _, m := range mirrorURLs {
		if m == "" {
			continue
		}
		u, err := url.Parse(m)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("httpd: upstream URL %q: want scheme://host/...", m)
		}
		p.hosts[hostPortKey(u.Hostname(), portOf(u))] = true
	}
	for _, h := range extraHosts {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if strings.Contains(h, "://") {
			u, err := url.Parse(h)
			if err != nil || u.Host == "" {
				return nil, fmt.Errorf("httpd: proxy-allow-host %q: bad URL", h)
			}
			if u.Port() != "" {
				p.hosts[hostPortKey(u.Hostname(), u.Port())] = true
			} else {
				p.hosts[strings.ToLower(u.Hostname())] = true
			}
			continue
		}
		if host, port, err := net.SplitHostPort(h); err == nil {
			p.hosts[hostPortKey(host, port)] = true
			continue
		}
		p.hosts[strings.ToLower(strings.Trim(h, "[]"))] = true
	}
	return p.hosts, nil
}

func hostPortKey(host, port string) string {
	return net.JoinHostPort(strings.ToLower(strings.Trim(host, "[]")), port)
}

// portOf is the URL's port, or its scheme's default.
func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return "443"
	case "ftp":
		return "21"
	}
	return "80"
}

// Listed reports whether host:port was configured explicitly.
func (p *Policy) Listed(host, port string) bool {
	if p == nil {
		return false
	}
	h := strings.ToLower(strings.Trim(host, "[]"))
	hosts := p.hosts.Load()
	if hosts == nil {
		return false
	}
	return (*hosts)[h] || (*hosts)[net.JoinHostPort(h, port)]
}

// Check reports whether a client-chosen URL may be fetched: listed hosts
// always; others when every address the name resolves to is public.
func (p *Policy) Check(ctx context.Context, u *url.URL) error {
	if p == nil {
		return errRefused
	}
	host, port := u.Hostname(), portOf(u)
	if host == "" {
		return fmt.Errorf("no host in %q: %w", u.Redacted(), errRefused)
	}
	if p.Listed(host, port) {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if !Public(ip) {
			return fmt.Errorf("%s is not a public address: %w", ip, errRefused)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", host, err)
	}
	if len(ips) == 0 {
		return fmt.Errorf("resolve %s: no address", host)
	}
	for _, ip := range ips {
		if !Public(ip) {
			return fmt.Errorf("%s resolves to %s, not a public address: %w", host, ip, errRefused)
		}
	}
	return nil
}

// nonPublic are IPv4 ranges that are neither covered by netip's
// predicates nor reachable public unicast addresses.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("fec0::/10"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("64:ff9b::/96"),
}

// Public reports whether ip is a public unicast address.
func Public(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsUnspecified() ||
		ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() ||
		ip.IsMulticast() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(ip.WithZone("")) {
			return false
		}
	}
	return true
}

// DialContext connects like net.Dialer, refusing non-public addresses of
// hosts that are not listed. The address checked is the one dialed.
func (p *Policy) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	listed := p.Listed(host, port)
	d := net.Dialer{
		Timeout:   30 * time.Second,
		KeepAlive: 30 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			if listed {
				return nil
			}
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("dial %s: %w", address, err)
			}
			if !Public(ap.Addr()) {
				return fmt.Errorf("dial %s (%s): not a public address: %w", host, ap.Addr(), errRefused)
			}
			return nil
		},
	}
	return d.DialContext(ctx, network, addr)
}

// Client returns the HTTP client for every upstream request: it dials
// through DialContext, ignores proxy environment variables, checks TLS
// certificates, and bounds connection setup and response header waits.
func (p *Policy) Client() *http.Client {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           p.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   20 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{Transport: tr}
}
