package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

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

// firewallNetnsScript runs in a private network namespace (unshare
// --net): it starts lanmirror on :$PORT, loads the rules with $LOAD, and
// connects from an allowed and from another source address of each
// family. It prints one "SOURCE CODE" line per client (000: no answer).
const firewallNetnsScript = `set -eu
ip link set lo up
ip -6 addr add fd00::2/128 dev lo nodad
"$LM" serve --allow-root --data "$DATA" --http ":$PORT" --rsync "" --allow 127.0.0.0/8 --allow ::1 --allow fd00::/8 >"$DATA.log" 2>&1 &
pid=$!
trap 'kill $pid' EXIT
i=0
until curl -s -o /dev/null "http://127.0.0.1:$PORT/"; do
	i=$((i+1)); [ $i -lt 300 ] || { echo "lanmirror did not start"; cat "$DATA.log"; exit 1; }
	sleep 0.1
done
sh -c "$LOAD"
for c in "127.0.0.1 127.0.0.1" "127.0.0.2 127.0.0.1" "::1 [::1]" "fd00::2 [::1]"; do
	set -- $c
	echo "$1 $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 --interface "$1" "http://$2:$PORT/" || true)"
done
`

// The rules do what they say: loaded into a private network namespace,
// nft's table and the iptables/ip6tables rules (with a DROP policy, as on
// a firewalled host) let the allowed sources reach lanmirror and drop the
// others, for both families.
func TestFirewallRulesFilterInNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		testutil.MissingTool(t, "loading packet filter rules in a network namespace needs root")
	}
	unshare := testutil.RequireTool(t, "unshare")
	testutil.RequireTool(t, "ip")
	testutil.RequireTool(t, "curl")
	nft := testutil.RequireTool(t, "nft")
	ipt := testutil.RequireTool(t, "iptables-restore")
	ip6t := testutil.RequireTool(t, "ip6tables-restore")
	testutil.RequireTool(t, "iptables")
	testutil.RequireTool(t, "ip6tables")
	dir := t.TempDir()
	const port = "18090" // the namespace is private: any port is free
	args := []string{"--http", ":" + port, "--allow", "127.0.0.1", "--allow", "::1"}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	v4 := write("v4", runFirewall(t, args...))
	v6 := write("v6", runFirewall(t, append(args, "--format", "ip6tables")...))
	nftFile := write("nft", runFirewall(t, append(args, "--format", "nft")...))
	for name, load := range map[string]string{
		"nft": nft + " -f " + nftFile,
		"iptables": "iptables -A INPUT -m state --state ESTABLISHED,RELATED -j ACCEPT && iptables -P INPUT DROP && " +
			ipt + " --noflush < " + v4 + " && " +
			"ip6tables -A INPUT -m state --state ESTABLISHED,RELATED -j ACCEPT && ip6tables -P INPUT DROP && " +
			ip6t + " --noflush < " + v6,
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, unshare, "--net", "sh", "-c", firewallNetnsScript)
			cmd.Env = append(os.Environ(), htExecMain+"=1", "LM="+htBinary(t), "DATA="+filepath.Join(t.TempDir(), "data"),
				"PORT="+port, "LOAD="+load)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			for _, want := range []string{"127.0.0.1 200\n", "127.0.0.2 000\n", "::1 200\n", "fd00::2 000\n"} {
				if !strings.Contains(string(out), want) {
					t.Errorf("with the %s rules want %q:\n%s", name, want, out)
				}
			}
		})
	}
}

// The settings may come from the config file, as for serve: its http
// address, allow list and modules' hosts-allow make the rules; a flag
// overrides the file.
func TestFirewallFromConfigFile(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "lanmirror.toml")
	if err := os.WriteFile(conf, []byte(`http = ":3142"
allow = ["10.13.18.0/24", "fd00::/8"]
rsync = ":8873"

[[module]]
name = "gentoo-portage"
path = "`+dir+`"
hosts-allow = ["10.13.18.0/24", "192.168.5.0/24"]
hosts-deny = ["*"]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := runFirewall(t, "--config", conf, "--format", "sh")
	if got, want := acceptRules(t, out), []string{
		"10.13.18.0/24 3142", "10.13.18.0/24 8873", "192.168.5.0/24 8873", "fd00::/8 3142",
	}; !slices.Equal(got, want) {
		t.Errorf("rules from the config file %q, want %q:\n%s", got, want, out)
	}
	out = runFirewall(t, "--config", conf, "--http", ":8080")
	if got, want := acceptRules(t, out), []string{"10.13.18.0/24 8080", "10.13.18.0/24 8873", "192.168.5.0/24 8873"}; !slices.Equal(got, want) {
		t.Errorf("--http over the config file: %q, want %q:\n%s", got, want, out)
	}
}
