// Package firewall turns lanmirror's listeners and allow lists into packet
// filter rules: iptables/ip6tables rules in the classic form
//
//	-A INPUT --protocol tcp --source NET --match state --state NEW --destination-port PORT --jump ACCEPT
//
// (one per allowed network and listener port, in iptables-restore format or
// as shell commands), and an nftables table with one address set per
// listener and family. It only prints; loading the rules is the admin's
// step.
package firewall

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/lanmirror/lanmirror/internal/acl"
	"github.com/lanmirror/lanmirror/internal/config"
)

// Listener is one TCP port lanmirror listens on and the sources that may
// connect to it.
type Listener struct {
	// Name says what listens ("http", "rsync"); it names the nft sets.
	Name string
	// Addr is the listen address; invalid when listening on every address.
	Addr netip.Addr
	// Port is the TCP port.
	Port uint16
	// Sources are the allowed source networks (no two overlapping).
	Sources []netip.Prefix
	// Notes explain choices (why a port is open to everyone, rules that
	// cannot become packet filter rules); printed as comments.
	Notes []string
}

// parseListen splits a listen address "host:port" (host may be empty).
func parseListen(what, addr string) (netip.Addr, uint16, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("%s address %q: %w", what, addr, err)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil || port == 0 {
		return netip.Addr{}, 0, fmt.Errorf("%s address %q: port %q is not a number from 1 to 65535 (the firewall needs the port number)", what, addr, p)
	}
	var a netip.Addr
	if host != "" {
		if a, err = netip.ParseAddr(host); err != nil {
			return netip.Addr{}, 0, fmt.Errorf("%s address %q: host %q is not an IP address (the firewall needs one)", what, addr, host)
		}
		a = a.Unmap()
		if a.IsUnspecified() {
			a = netip.Addr{}
		}
	}
	return a, uint16(port), nil
}

var (
	any4 = netip.MustParsePrefix("0.0.0.0/0")
	any6 = netip.MustParsePrefix("::/0")
)

// HTTPListener is the HTTP side listening on addr for the clients of the
// allow rules (acl syntax; none means acl.DefaultRules).
func HTTPListener(addr string, allow []string) (Listener, error) {
	a, port, err := parseListen("--http", addr)
	if err != nil {
		return Listener{}, err
	}
	if len(allow) == 0 {
		allow = acl.DefaultRules
	}
	l, err := acl.Parse(allow...)
	if err != nil {
		return Listener{}, fmt.Errorf("--allow: %w", err)
	}
	ps, all := l.Prefixes()
	if all {
		ps = []netip.Prefix{any4, any6}
	}
	return Listener{Name: "http", Addr: a, Port: port, Sources: merge(ps)}, nil
}

// RsyncListener is the rsync daemon on addr serving modules: the port is
// open to the union of what the modules let in (rsyncd's hosts allow and
// hosts deny). A module without hosts allow, or whose hosts deny is not
// "*", lets in addresses outside any list, so the port is then open to
// everyone and lanmirror itself refuses the denied ones.
func RsyncListener(addr string, modules []config.Module) (Listener, error) {
	a, port, err := parseListen("rsync", addr)
	if err != nil {
		return Listener{}, err
	}
	if len(modules) == 0 {
		return Listener{}, errors.New("rsync: no modules")
	}
	ln := Listener{Name: "rsync", Addr: a, Port: port}
	var ps []netip.Prefix
	open := false
	for _, m := range modules {
		allow, err := acl.Parse(m.HostsAllow...)
		if err != nil {
			return Listener{}, fmt.Errorf("module %s: hosts allow: %w", m.Name, err)
		}
		deny, err := acl.Parse(m.HostsDeny...)
		if err != nil {
			return Listener{}, fmt.Errorf("module %s: hosts deny: %w", m.Name, err)
		}
		allowPs, allowAll := allow.Prefixes()
		_, denyAll := deny.Prefixes()
		switch {
		case allowAll:
			open = true
			ln.Notes = append(ln.Notes, fmt.Sprintf("module %s: hosts allow = * lets everyone in", m.Name))
		case allow.Empty() && deny.Empty():
			open = true
			ln.Notes = append(ln.Notes, fmt.Sprintf("module %s has no hosts allow: open to everyone", m.Name))
		case allow.Empty() && denyAll:
			ln.Notes = append(ln.Notes, fmt.Sprintf("module %s: hosts deny = * and no hosts allow: nobody may use it", m.Name))
		case allow.Empty():
			open = true
			ln.Notes = append(ln.Notes, fmt.Sprintf("module %s lets in every address its hosts deny does not list: open to everyone, lanmirror refuses the denied ones", m.Name))
		case deny.Empty() || denyAll:
			ps = append(ps, allowPs...)
		default:
			open = true
			ln.Notes = append(ln.Notes, fmt.Sprintf("module %s: with hosts allow and a hosts deny other than *, rsyncd lets in every address hosts deny does not list: open to everyone, lanmirror refuses the denied ones", m.Name))
		}
	}
	if open {
		ps = []netip.Prefix{any4, any6}
	}
	ln.Sources = merge(ps)
	return ln, nil
}

// merge sorts the prefixes and drops those inside another one (nft
// interval sets refuse overlapping elements).
func merge(ps []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for i, p := range ps {
		inside := false
		for j, q := range ps {
			if i == j || q.Addr().Is4() != p.Addr().Is4() || q.Bits() > p.Bits() || !q.Contains(p.Addr()) {
				continue
			}
			// Equal prefixes: keep the first.
			if q.Bits() < p.Bits() || j < i {
				inside = true
				break
			}
		}
		if !inside {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return out
}

// family selects IPv4 or IPv6.
type family int

const (
	ipv4 family = 4
	ipv6 family = 6
)

func (f family) has(p netip.Prefix) bool { return p.Addr().Is4() == (f == ipv4) }

// iptablesRule is one ACCEPT rule in the classic form, without the
// leading command.
func iptablesRule(l Listener, src netip.Prefix) string {
	var b strings.Builder
	fmt.Fprintf(&b, "-A INPUT --protocol tcp --source %s", src)
	if l.Addr.IsValid() {
		fmt.Fprintf(&b, " --destination %s", l.Addr)
	}
	fmt.Fprintf(&b, " --match state --state NEW --destination-port %d --jump ACCEPT", l.Port)
	return b.String()
}

// forFamily reports whether l can take connections of family f.
func (l Listener) forFamily(f family) bool {
	return !l.Addr.IsValid() || l.Addr.Is4() == (f == ipv4)
}

func writeNotes(w io.Writer, ls []Listener) {
	for _, l := range ls {
		for _, n := range l.Notes {
			fmt.Fprintf(w, "# %s port %d: %s\n", l.Name, l.Port, n)
		}
	}
}

func describe(ls []Listener) string {
	var parts []string
	for _, l := range ls {
		parts = append(parts, fmt.Sprintf("%s %d/tcp", l.Name, l.Port))
	}
	return strings.Join(parts, ", ")
}

// WriteIPTables writes the IPv4 (v6 false) or IPv6 rules in
// iptables-restore format: a *filter table with one ACCEPT rule per
// allowed network and listener, for `iptables-restore --noflush` (or
// ip6tables-restore).
func WriteIPTables(w io.Writer, ls []Listener, v6 bool) error {
	f, tool := ipv4, "iptables"
	if v6 {
		f, tool = ipv6, "ip6tables"
	}
	fmt.Fprintf(w, "# lanmirror: %s rules for %s\n", tool, describe(ls))
	fmt.Fprintf(w, "# load without replacing the other rules: %s-restore --noflush < FILE\n", tool)
	writeNotes(w, ls)
	fmt.Fprintln(w, "*filter")
	for _, l := range ls {
		if !l.forFamily(f) {
			continue
		}
		for _, src := range l.Sources {
			if f.has(src) {
				fmt.Fprintln(w, iptablesRule(l, src))
			}
		}
	}
	_, err := fmt.Fprintln(w, "COMMIT")
	return err
}

// WriteCommands writes the rules of both families as iptables and
// ip6tables commands, for a shell.
func WriteCommands(w io.Writer, ls []Listener) error {
	fmt.Fprintf(w, "# lanmirror: iptables and ip6tables rules for %s\n", describe(ls))
	writeNotes(w, ls)
	for _, f := range []family{ipv4, ipv6} {
		tool := "iptables"
		if f == ipv6 {
			tool = "ip6tables"
		}
		for _, l := range ls {
			if !l.forFamily(f) {
				continue
			}
			for _, src := range l.Sources {
				if f.has(src) {
					fmt.Fprintf(w, "%s %s\n", tool, iptablesRule(l, src))
				}
			}
		}
	}
	return nil
}

// NFTTable is the name of the nftables table WriteNFT writes.
const NFTTable = "lanmirror"

// WriteNFT writes an nftables table "inet lanmirror": per listener a set
// of the allowed IPv4 and IPv6 networks, and an input chain accepting new
// connections to the listener's port from its sets and dropping the
// others. Loading it (nft -f) replaces an earlier lanmirror table.
func WriteNFT(w io.Writer, ls []Listener) error {
	fmt.Fprintf(w, "# lanmirror: nftables rules for %s\n", describe(ls))
	fmt.Fprintln(w, "# load with nft -f FILE (replaces an earlier lanmirror table). The chain drops")
	fmt.Fprintln(w, "# connections to these ports from outside the sets; if your own input chain")
	fmt.Fprintln(w, "# drops by default, accept the ports there too.")
	writeNotes(w, ls)
	fmt.Fprintf(w, "table inet %s\n", NFTTable)
	fmt.Fprintf(w, "delete table inet %s\n", NFTTable)
	fmt.Fprintf(w, "table inet %s {\n", NFTTable)
	type set struct {
		name, l3, typ string
		l             Listener
	}
	var sets []set
	for _, l := range ls {
		for _, f := range []family{ipv4, ipv6} {
			if !l.forFamily(f) {
				continue
			}
			var elems []string
			for _, src := range l.Sources {
				if f.has(src) {
					elems = append(elems, src.String())
				}
			}
			s := set{name: fmt.Sprintf("%s_v%d", l.Name, f), l3: "ip", typ: "ipv4_addr", l: l}
			if f == ipv6 {
				s.l3, s.typ = "ip6", "ipv6_addr"
			}
			fmt.Fprintf(w, "\tset %s {\n\t\ttype %s\n\t\tflags interval\n", s.name, s.typ)
			if len(elems) > 0 {
				fmt.Fprintf(w, "\t\telements = { %s }\n", strings.Join(elems, ", "))
			}
			fmt.Fprintln(w, "\t}")
			sets = append(sets, s)
		}
	}
	fmt.Fprintln(w, "\tchain input {")
	fmt.Fprintln(w, "\t\ttype filter hook input priority filter; policy accept;")
	for _, s := range sets {
		dst := ""
		if s.l.Addr.IsValid() {
			dst = fmt.Sprintf("%s daddr %s ", s.l3, s.l.Addr)
		}
		fmt.Fprintf(w, "\t\t%s%s saddr @%s tcp dport %d ct state new accept\n", dst, s.l3, s.name, s.l.Port)
	}
	for _, l := range ls {
		dst := ""
		if l.Addr.IsValid() {
			l3 := "ip"
			if l.Addr.Is6() {
				l3 = "ip6"
			}
			dst = fmt.Sprintf("%s daddr %s ", l3, l.Addr)
		}
		fmt.Fprintf(w, "\t\t%stcp dport %d ct state new drop\n", dst, l.Port)
	}
	fmt.Fprintln(w, "\t}")
	_, err := fmt.Fprintln(w, "}")
	return err
}
