package firewall

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/lanmirror/lanmirror/internal/config"
)

func prefixes(ps []netip.Prefix) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

func TestHTTPListener(t *testing.T) {
	l, err := HTTPListener(":8080", []string{"10.13.18.*", "10.13.18.7", "192.168.0.0/255.255.0.0", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	if l.Port != 8080 || l.Addr.IsValid() {
		t.Errorf("port %d addr %v, want 8080 on every address", l.Port, l.Addr)
	}
	if got, want := prefixes(l.Sources), []string{"10.13.18.0/24", "192.168.0.0/16", "::1/128"}; !slices.Equal(got, want) {
		t.Errorf("sources %q, want %q (10.13.18.7 is inside 10.13.18.0/24)", got, want)
	}
	def, err := HTTPListener("10.13.18.1:80", nil)
	if err != nil {
		t.Fatal(err)
	}
	if def.Addr != netip.MustParseAddr("10.13.18.1") || len(def.Sources) != 6 {
		t.Errorf("default allow list: addr %v sources %q", def.Addr, prefixes(def.Sources))
	}
	for _, bad := range []string{"8080", "host.example:8080", ":http", ":0"} {
		if _, err := HTTPListener(bad, nil); err == nil {
			t.Errorf("HTTPListener(%q) accepted", bad)
		}
	}
	if _, err := HTTPListener(":8080", []string{"10.13.18.x"}); err == nil {
		t.Error("a bad --allow rule was accepted")
	}
}

func TestRsyncListenerFollowsHostsAllowAndDeny(t *testing.T) {
	mod := func(allow, deny string) config.Module {
		m := config.Module{Name: "m" + allow + deny, Path: "/tmp"}
		if allow != "" {
			m.HostsAllow = []string{allow}
		}
		if deny != "" {
			m.HostsDeny = []string{deny}
		}
		return m
	}
	for _, c := range []struct {
		name    string
		modules []config.Module
		want    []string
	}{
		{"allow only", []config.Module{mod("10.13.18.0/24", "")}, []string{"10.13.18.0/24"}},
		{"allow, deny *", []config.Module{mod("10.13.18.0/24 fd00::/8", "*")}, []string{"10.13.18.0/24", "fd00::/8"}},
		{"union of modules", []config.Module{mod("10.13.18.0/24", "*"), mod("192.168.1.5", "")}, []string{"10.13.18.0/24", "192.168.1.5/32"}},
		{"no lists: everyone", []config.Module{mod("10.13.18.0/24", "*"), mod("", "")}, []string{"0.0.0.0/0", "::/0"}},
		{"partial deny: everyone", []config.Module{mod("10.13.18.0/24", "10.0.0.0/8")}, []string{"0.0.0.0/0", "::/0"}},
		{"deny only: everyone", []config.Module{mod("", "10.0.0.0/8")}, []string{"0.0.0.0/0", "::/0"}},
		{"deny all: nobody", []config.Module{mod("", "*")}, nil},
	} {
		l, err := RsyncListener(":873", c.modules)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := prefixes(l.Sources); !slices.Equal(got, c.want) {
			t.Errorf("%s: sources %q, want %q", c.name, got, c.want)
		}
		if len(c.want) != 1 && (len(c.want) == 0 || c.want[0] == "0.0.0.0/0") && len(l.Notes) == 0 {
			t.Errorf("%s: no note says why", c.name)
		}
	}
}

func TestWriteFormats(t *testing.T) {
	http, err := HTTPListener(":8080", []string{"10.13.18.0/24", "fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := RsyncListener("[::1]:873", []config.Module{{Name: "g", HostsAllow: []string{"::1"}}})
	if err != nil {
		t.Fatal(err)
	}
	ls := []Listener{http, rs}
	var v4, v6, sh, nft strings.Builder
	if err := WriteIPTables(&v4, ls, false); err != nil {
		t.Fatal(err)
	}
	if err := WriteIPTables(&v6, ls, true); err != nil {
		t.Fatal(err)
	}
	if err := WriteCommands(&sh, ls); err != nil {
		t.Fatal(err)
	}
	if err := WriteNFT(&nft, ls); err != nil {
		t.Fatal(err)
	}
	rule := "-A INPUT --protocol tcp --source 10.13.18.0/24 --match state --state NEW --destination-port 8080 --jump ACCEPT"
	if !strings.Contains(v4.String(), "*filter\n"+rule+"\nCOMMIT\n") {
		t.Errorf("iptables output:\n%s", v4.String())
	}
	want6 := "*filter\n" +
		"-A INPUT --protocol tcp --source fd00::/8 --match state --state NEW --destination-port 8080 --jump ACCEPT\n" +
		"-A INPUT --protocol tcp --source ::1/128 --destination ::1 --match state --state NEW --destination-port 873 --jump ACCEPT\n" +
		"COMMIT\n"
	if !strings.Contains(v6.String(), want6) {
		t.Errorf("ip6tables output:\n%s\nwant:\n%s", v6.String(), want6)
	}
	if !strings.Contains(sh.String(), "\niptables "+rule+"\n") || !strings.Contains(sh.String(), "\nip6tables -A INPUT --protocol tcp --source ::1/128 --destination ::1 ") {
		t.Errorf("sh output:\n%s", sh.String())
	}
	for _, want := range []string{
		"set http_v4 {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = { 10.13.18.0/24 }\n\t}",
		"set rsync_v6 {\n\t\ttype ipv6_addr\n\t\tflags interval\n\t\telements = { ::1/128 }\n\t}",
		"ip saddr @http_v4 tcp dport 8080 ct state new accept",
		"ip6 daddr ::1 ip6 saddr @rsync_v6 tcp dport 873 ct state new accept",
		"ip6 daddr ::1 tcp dport 873 ct state new drop",
		"\t\ttcp dport 8080 ct state new drop",
	} {
		if !strings.Contains(nft.String(), want) {
			t.Errorf("nft output lacks %q:\n%s", want, nft.String())
		}
	}
	if strings.Contains(nft.String(), "rsync_v4") {
		t.Errorf("an IPv4 set for a listener on ::1:\n%s", nft.String())
	}
}
