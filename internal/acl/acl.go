// Package acl holds lanmirror's client access rules, shared by the HTTP side
// and the rsync daemon: allow lists in CIDR, single-address and
// http-replicator wildcard form ("10.13.18.*"), and rsyncd's
// "hosts allow"/"hosts deny" semantics built on them.
package acl

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// List is an ordered set of address rules. The zero value matches nothing.
type List struct {
	prefixes []netip.Prefix
	any      bool
	rules    []string
}

// Parse builds a List from rules. Each rule is one of:
//   - "*" or "all": every address;
//   - a CIDR prefix: "10.13.18.0/24", "::1/128";
//   - a single address: "127.0.0.1", "::1";
//   - a wildcard of whole IPv4 octets: "10.13.18.*", "10.*".
//
// A rule may also hold several of these separated by spaces or commas, as
// rsyncd.conf writes them.
func Parse(rules ...string) (*List, error) {
	l := &List{}
	for _, r := range rules {
		for _, f := range strings.FieldsFunc(r, func(c rune) bool { return c == ' ' || c == ',' || c == '\t' }) {
			if err := l.add(f); err != nil {
				return nil, err
			}
		}
	}
	return l, nil
}

// MustParse is Parse for rules known to be valid; it panics otherwise.
func MustParse(rules ...string) *List {
	l, err := Parse(rules...)
	if err != nil {
		panic(err)
	}
	return l
}

// DefaultRules are the rules lanmirror uses when none are configured:
// loopback and the private ranges of IPv4 and IPv6.
var DefaultRules = []string{
	"127.0.0.0/8", "::1/128",
	"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
	"fc00::/7",
}

// Default returns a List of DefaultRules.
func Default() *List { return MustParse(DefaultRules...) }

func (l *List) add(rule string) error {
	l.rules = append(l.rules, rule)
	switch {
	case rule == "*" || strings.EqualFold(rule, "all"):
		l.any = true
		return nil
	case strings.Contains(rule, "/"):
		p, err := netip.ParsePrefix(rule)
		if err != nil {
			// rsyncd also accepts address/netmask, e.g. 10.0.0.0/255.0.0.0.
			addr, mask, ok := strings.Cut(rule, "/")
			a, err1 := netip.ParseAddr(addr)
			m := net.ParseIP(mask)
			if ok && err1 == nil && m != nil && a.Is4() && m.To4() != nil {
				ones, bits := net.IPMask(m.To4()).Size()
				if bits == 32 {
					l.prefixes = append(l.prefixes, netip.PrefixFrom(a, ones).Masked())
					return nil
				}
			}
			return fmt.Errorf("acl: bad prefix %q: %w", rule, err)
		}
		l.prefixes = append(l.prefixes, p.Masked())
		return nil
	case strings.Contains(rule, "*"):
		parts := strings.Split(rule, ".")
		if len(parts) > 4 {
			return fmt.Errorf("acl: bad wildcard %q", rule)
		}
		var b [4]byte
		bits := 0
		wild := false
		for i, p := range parts {
			if p == "*" {
				wild = true
				continue
			}
			if wild {
				return fmt.Errorf("acl: bad wildcard %q: octets after '*'", rule)
			}
			var v int
			if _, err := fmt.Sscanf(p, "%d", &v); err != nil || v < 0 || v > 255 || fmt.Sprint(v) != p {
				return fmt.Errorf("acl: bad wildcard %q", rule)
			}
			b[i] = byte(v)
			bits += 8
		}
		if !wild {
			return fmt.Errorf("acl: bad wildcard %q", rule)
		}
		l.prefixes = append(l.prefixes, netip.PrefixFrom(netip.AddrFrom4(b), bits))
		return nil
	default:
		a, err := netip.ParseAddr(rule)
		if err != nil {
			return fmt.Errorf("acl: bad address rule %q (want CIDR, address or 10.1.2.* wildcard)", rule)
		}
		l.prefixes = append(l.prefixes, netip.PrefixFrom(a, a.BitLen()))
		return nil
	}
}

// Empty reports whether the list has no rules.
func (l *List) Empty() bool { return l == nil || len(l.rules) == 0 }

// Contains reports whether ip matches a rule. IPv4-mapped IPv6 addresses are
// matched as IPv4.
func (l *List) Contains(ip netip.Addr) bool {
	if l == nil {
		return false
	}
	if l.any {
		return true
	}
	ip = ip.Unmap().WithZone("")
	for _, p := range l.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// String returns the rules as given, space separated.
func (l *List) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(l.rules, " ")
}

// Access combines an allow and a deny list with rsyncd's rules: an address
// matching Allow is let in; otherwise one matching Deny is refused; otherwise
// it is let in unless only an Allow list is given (access.c allow_access).
type Access struct {
	Allow *List
	Deny  *List
}

// Permit reports whether ip may connect.
func (a Access) Permit(ip netip.Addr) bool {
	if a.Allow.Contains(ip) {
		return true
	}
	if a.Deny.Contains(ip) {
		return false
	}
	return a.Allow.Empty() || !a.Deny.Empty()
}

// AddrOf extracts the IP of a net.Addr or "host:port" string; ok is false
// when there is none.
func AddrOf(remote string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap(), true
	}
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

// Prefixes returns the address ranges of the list (wildcards and single
// addresses as prefixes) and whether it matches every address ("*").
// The firewall rules are built from them.
func (l *List) Prefixes() (prefixes []netip.Prefix, any bool) {
	if l == nil {
		return nil, false
	}
	return append([]netip.Prefix(nil), l.prefixes...), l.any
}
