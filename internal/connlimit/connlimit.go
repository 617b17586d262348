// Package connlimit counts the connections each client address holds and
// refuses those beyond a per-client limit (lanmirror's
// --max-conns-per-client, shared by the HTTP side and the rsync daemon),
// so that one host cannot take every connection of a server.
package connlimit

import (
	"net"
	"net/netip"
	"sync"
)

// PerClient counts connections by client IP address. The zero value and
// a nil *PerClient allow everything.
type PerClient struct {
	limit int
	mu    sync.Mutex
	n     map[netip.Addr]int
}

// New returns a PerClient allowing limit connections per address; limit <= 0
// means no limit.
func New(limit int) *PerClient {
	return &PerClient{limit: limit, n: map[netip.Addr]int{}}
}

// Max returns the limit (0: none).
func (p *PerClient) Max() int {
	if p == nil || p.limit <= 0 {
		return 0
	}
	return p.limit
}

// Acquire counts one more connection from addr. It returns false when the
// address already holds Max connections; otherwise release, to be called
// once when the connection ends (later calls do nothing). Addresses that
// are not IP addresses (unix sockets) are not limited.
func (p *PerClient) Acquire(addr net.Addr) (release func(), ok bool) {
	if p.Max() == 0 || addr == nil {
		return func() {}, true
	}
	ip, okIP := addrOf(addr)
	if !okIP {
		return func() {}, true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n[ip] >= p.limit {
		return nil, false
	}
	p.n[ip]++
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.n[ip] <= 1 {
				delete(p.n, ip)
			} else {
				p.n[ip]--
			}
		})
	}, true
}

// Count returns how many connections addr holds now.
func (p *PerClient) Count(addr net.Addr) int {
	if p.Max() == 0 {
		return 0
	}
	ip, ok := addrOf(addr)
	if !ok {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n[ip]
}

// addrOf returns the IP address of a TCP (or UDP, IP) address, IPv4-mapped
// IPv6 addresses unmapped so that both spellings count as one client.
func addrOf(addr net.Addr) (netip.Addr, bool) {
	var ip net.IP
	switch a := addr.(type) {
	case *net.TCPAddr:
		ip = a.IP
	case *net.UDPAddr:
		ip = a.IP
	case *net.IPAddr:
		ip = a.IP
	default:
		ap, err := netip.ParseAddrPort(addr.String())
		if err != nil {
			return netip.Addr{}, false
		}
		return ap.Addr().Unmap(), true
	}
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}
