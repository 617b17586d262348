package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/lanmirror/lanmirror/internal/testutil"
)

// runFirewall runs `lanmirror firewall args...` and returns its output.
func runFirewall(t *testing.T, args ...string) string {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append([]string{"firewall"}, args...))
	if err := root.Execute(); err != nil {
		t.Fatalf("lanmirror firewall %q: %v\n%s", args, err, out.String())
	}
	return out.String()
}

var ruleRE = regexp.MustCompile(`^(?:ip6?tables )?-A INPUT --protocol tcp --source (\S+)(?: --destination \S+)? --match state --state NEW --destination-port (\d+) --jump ACCEPT$`)

// acceptRules parses the classic -A INPUT rules into "source port".
func acceptRules(t *testing.T, out string) []string {
	t.Helper()
	var rules []string
	for _, l := range strings.Split(out, "\n") {
		if !strings.Contains(l, "-A INPUT") {
			continue
		}
		m := ruleRE.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("not the classic rule form: %q", l)
		}
		rules = append(rules, m[1]+" "+m[2])
	}
	slices.Sort(rules)
	return rules
}

// The seed's setup: http-replicator's --ip 10.13.18.* on 8080 and an
// rsyncd.conf with hosts allow. The rules open exactly these ports to
// exactly these networks, and iptables-restore, ip6tables-restore and
// nft accept what is printed.
func TestFirewallRules(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "rsyncd.conf")
	if err := os.WriteFile(conf, []byte(`max connections = 5
use chroot = yes
read only = yes
hosts allow = 10.13.18.0/24 fd12:3456::/32
hosts deny  = *
[niden-gentoo-portage]
path = `+dir+`
comment = niden.net Gentoo Portage tree
[other]
path = `+dir+`
hosts allow = 192.168.7.9
`), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--rsyncd-conf", conf, "--http", ":8080", "--allow", "10.13.18.*", "--allow", "::1"}

	v4 := runFirewall(t, args...)
	if got, want := acceptRules(t, v4), []string{
		"10.13.18.0/24 8080", "10.13.18.0/24 873", "192.168.7.9/32 873",
	}; !slices.Equal(got, want) {
		t.Errorf("iptables rules %q, want %q:\n%s", got, want, v4)
	}
	v6 := runFirewall(t, append(args, "--format", "ip6tables")...)
	if got, want := acceptRules(t, v6), []string{"::1/128 8080", "fd12:3456::/32 873"}; !slices.Equal(got, want) {
		t.Errorf("ip6tables rules %q, want %q:\n%s", got, want, v6)
	}
	sh := runFirewall(t, append(args, "--format", "sh")...)
	if got, want := acceptRules(t, sh), append(acceptRules(t, v4), acceptRules(t, v6)...); !slices.Equal(got, func() []string { slices.Sort(want); return want }()) {
		t.Errorf("sh rules %q, want the iptables and ip6tables ones %q", got, want)
	}
	if strings.Count(sh, "\nip6tables -A") != 2 || strings.Count(sh, "\niptables -A") != 3 {
		t.Errorf("sh output does not give each rule to the right tool:\n%s", sh)
	}
	nft := runFirewall(t, append(args, "--format", "nft")...)
	for _, want := range []string{
		"elements = { 10.13.18.0/24 }",
		"elements = { ::1/128 }",
		"elements = { 10.13.18.0/24, 192.168.7.9/32 }",
		"elements = { fd12:3456::/32 }",
		"ip saddr @http_v4 tcp dport 8080 ct state new accept",
		"ip6 saddr @rsync_v6 tcp dport 873 ct state new accept",
		"tcp dport 873 ct state new drop",
	} {
		if !strings.Contains(nft, want) {
			t.Errorf("nft output lacks %q:\n%s", want, nft)
		}
	}

	// Without modules there is no rsync listener, hence no rule for it;
	// with --http '' no HTTP rule.
	httpOnly := runFirewall(t, "--http", "127.0.0.1:3128", "--allow", "10.0.0.0/8")
	if got := acceptRules(t, httpOnly); !slices.Equal(got, []string{"10.0.0.0/8 3128"}) {
		t.Errorf("HTTP only: %q", got)
	}
	if !strings.Contains(httpOnly, "--source 10.0.0.0/8 --destination 127.0.0.1 ") {
		t.Errorf("rule for a listener on one address lacks --destination:\n%s", httpOnly)
	}

	for _, c := range []struct {
		tool, input string
		args        []string
	}{
		{"iptables-restore", v4, []string{"--test"}},
		{"ip6tables-restore", v6, []string{"--test"}},
		{"nft", nft, []string{"-c", "-f", "-"}},
	} {
		bin := testutil.RequireTool(t, c.tool)
		cmd := exec.Command(bin, c.args...)
		cmd.Stdin = strings.NewReader(c.input)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s %s rejects the rules: %v\n%s\ninput:\n%s", c.tool, strings.Join(c.args, " "), err, out, c.input)
		}
	}
}

func TestFirewallErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--format", "pf"},
		{"--allow", "10.13.18.x"},
		{"--http", "", "--rsync", ""},
		{"--http", "myhost:8080"},
	} {
		root := newRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(append([]string{"firewall"}, args...))
		if err := root.Execute(); err == nil {
			t.Errorf("firewall %q succeeded:\n%s", args, out.String())
		}
	}
}
