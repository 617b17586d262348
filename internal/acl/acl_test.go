package acl

import (
	"net/netip"
	"testing"
)

func TestListForms(t *testing.T) {
	l, err := Parse("10.13.18.0/24", "192.168.1.*", "::1", "fd00::/8 172.16.0.0/255.240.0.0")
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]bool{
		"10.13.18.7":        true,
		"10.13.19.7":        false,
		"192.168.1.200":     true,
		"192.168.2.1":       false,
		"::1":               true,
		"::2":               false,
		"fd12::1":           true,
		"172.31.255.1":      true,
		"172.32.0.1":        false,
		"::ffff:10.13.18.1": true,
	}
	for ip, want := range cases {
		if got := l.Contains(netip.MustParseAddr(ip)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", ip, got, want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, bad := range []string{"10.1.*.3", "300.1.1.*", "nonsense", "10.0.0.0/99", "1.2.3.4.*"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) succeeded, want error", bad)
		}
	}
}

func TestDefault(t *testing.T) {
	d := Default()
	for _, ip := range []string{"127.0.0.1", "127.0.0.2", "10.1.2.3", "192.168.0.9", "::1", "fd00::5"} {
		if !d.Contains(netip.MustParseAddr(ip)) {
			t.Errorf("default refuses %s", ip)
		}
	}
	for _, ip := range []string{"8.8.8.8", "2001:db8::1", "100.64.0.1"} {
		if d.Contains(netip.MustParseAddr(ip)) {
			t.Errorf("default allows %s", ip)
		}
	}
}

func TestAccessRsyncdSemantics(t *testing.T) {
	a := Access{Allow: MustParse("10.13.18.0/24"), Deny: MustParse("*")}
	if !a.Permit(netip.MustParseAddr("10.13.18.5")) || a.Permit(netip.MustParseAddr("127.0.0.2")) {
		t.Fatal("allow+deny * wrong")
	}
	a = Access{Deny: MustParse("127.0.0.2")}
	if a.Permit(netip.MustParseAddr("127.0.0.2")) || !a.Permit(netip.MustParseAddr("127.0.0.1")) {
		t.Fatal("deny only wrong")
	}
	a = Access{Allow: MustParse("127.0.0.1")}
	if a.Permit(netip.MustParseAddr("127.0.0.2")) {
		t.Fatal("allow only must refuse others")
	}
	// rsyncd: with both lists, an address matching neither is let in.
	a = Access{Allow: MustParse("10.0.0.0/8"), Deny: MustParse("127.0.0.2")}
	if !a.Permit(netip.MustParseAddr("127.0.0.1")) || a.Permit(netip.MustParseAddr("127.0.0.2")) {
		t.Fatal("allow+deny: non-matching address must be let in, denied one refused")
	}
	if (Access{}).Permit(netip.MustParseAddr("8.8.8.8")) != true {
		t.Fatal("empty access must permit")
	}
}

func TestAddrOf(t *testing.T) {
	for in, want := range map[string]string{"127.0.0.2:4455": "127.0.0.2", "[::1]:80": "::1", "10.0.0.1": "10.0.0.1", "[::ffff:1.2.3.4]:5": "1.2.3.4"} {
		a, ok := AddrOf(in)
		if !ok || a.String() != want {
			t.Errorf("AddrOf(%q) = %v %v, want %s", in, a, ok, want)
		}
	}
}
