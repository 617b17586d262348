package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// issueConf is the rsyncd.conf of issue 3, which must load unchanged
// (only the path adapted).
const issueConf = `max connections = 5
use chroot = yes
read only = yes
uid = nobody
gid = nobody
hosts allow = 10.13.18.0/24
hosts deny  = *
[niden-gentoo-portage]
path = PATH
comment = niden.net Gentoo Portage tree
exclude = /distfiles /packages
`

func TestParseRsyncdIssueSample(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "rsyncd.conf")
	if err := os.WriteFile(conf, []byte(strings.Replace(issueConf, "PATH", dir, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadRsyncd(conf)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 0 {
		t.Fatalf("warnings: %q", c.Warnings)
	}
	want := []Module{{
		Name: "niden-gentoo-portage", Path: dir, Comment: "niden.net Gentoo Portage tree",
		Exclude: []string{"/distfiles", "/packages"}, HostsAllow: []string{"10.13.18.0/24"},
		HostsDeny: []string{"*"}, MaxConnections: 5, ReadOnly: true, UseChroot: true,
		UID: "nobody", GID: "nobody", List: true,
	}}
	if !reflect.DeepEqual(c.Modules, want) {
		t.Fatalf("modules:\n got %+v\nwant %+v", c.Modules, want)
	}
	if c.File != conf {
		t.Fatalf("File = %q", c.File)
	}
}

func TestParseRsyncdSyntax(t *testing.T) {
	const src = `# comment
   ; another comment
motd file = /etc/motd
Port=8873
address = 127.0.0.1
PID_File = /run/lanmirror.pid
timeout = 600
list = False
exclude = /a \
          /b

[one]
	path = /srv/one
	comment = first   module  
	hosts_allow = 127.0.0.1, 10.0.0.0/8 192.168.*
	list = YES
[ two   words ]
path = /srv/two
max connections = 0
[global]
timeout = 0
[three]
path = /srv/three
Use Chroot = 0
exclude = - /distfiles /packages
[one]
max connections = 2
`
	c, err := ParseRsyncd(strings.NewReader(src), "test.conf")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 0 {
		t.Fatalf("warnings: %q", c.Warnings)
	}
	if c.Port != 8873 || c.Address != "127.0.0.1" || c.PIDFile != "/run/lanmirror.pid" || c.MOTDFile != "/etc/motd" {
		t.Fatalf("globals: %+v", c)
	}
	if len(c.Modules) != 3 {
		t.Fatalf("modules: %+v", c.Modules)
	}
	one, two, three := c.Modules[0], c.Modules[1], c.Modules[2]
	if one.Name != "one" || one.Comment != "first   module" || !one.List || one.Timeout != 600*time.Second ||
		one.MaxConnections != 2 || !reflect.DeepEqual(one.HostsAllow, []string{"127.0.0.1", "10.0.0.0/8", "192.168.*"}) ||
		!reflect.DeepEqual(one.Exclude, []string{"/a", "/b"}) {
		t.Fatalf("one: %+v", one)
	}
	if two.Name != "two words" || two.List || two.Timeout != 600*time.Second || !two.UseChroot || !two.ReadOnly {
		t.Fatalf("two: %+v", two)
	}
	if three.Timeout != 0 || three.UseChroot || !reflect.DeepEqual(three.Exclude, []string{"/distfiles", "/packages"}) {
		t.Fatalf("three: %+v", three)
	}
	if c.Module("two words") == nil || c.Module("nope") != nil {
		t.Fatal("Module lookup")
	}
}

func TestParseRsyncdWarnings(t *testing.T) {
	const src = `log file = /var/log/rsyncd.log
frobnicate = 3
&include /etc/rsyncd.d
just some words
[m]
path = /srv/m
port = 99
`
	c, err := ParseRsyncd(strings.NewReader(src), "w.conf")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`w.conf:1: parameter "log file" is not supported by lanmirror, ignored`,
		`w.conf:2: unknown parameter "frobnicate" ignored`,
		`w.conf:3: directive "&include" is not supported, ignored`,
		`w.conf:4: ignoring badly formed line "just some words" (want name = value)`,
		`w.conf:7: global parameter "port" in module [m] ignored`,
	}
	if !reflect.DeepEqual(c.Warnings, want) {
		t.Fatalf("warnings:\n got %q\nwant %q", c.Warnings, want)
	}
	if c.Port != 0 {
		t.Fatal("module-level port applied")
	}
}

func TestParseRsyncdErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"[m]\npath=/x\nread only = no\n", "e.conf:3: read only = no is not supported"},
		{"read only = false\n[m]\npath=/x\n", "e.conf:1: read only = false is not supported"},
		{"[m]\npath=/x\nlist = maybe\n", `e.conf:3: list: "maybe" is not a boolean`},
		{"[m]\npath=/x\nmax connections = lots\n", `e.conf:3: max connections: "lots" is not a number`},
		{"[m]\npath=/x\ntimeout = -1\n", `e.conf:3: timeout: "-1" is not a number of seconds`},
		{"port = 70000\n", `e.conf:1: port: "70000" is not a port number`},
		{"[m]\npath=/x\nhosts allow = example.com\n", "e.conf:3: hosts allow: acl: bad address rule"},
		{"[m]\ncomment = no path\n", "e.conf: module [m] has no path"},
		{"[m\npath=/x\n", "e.conf:1: badly formed section header"},
		{"[ ]\n", "e.conf:1: empty module name"},
		{"[a/b]\n", `e.conf:1: module name "a/b" contains a slash`},
		{"= value\n", "e.conf:1: parameter without a name"},
		{"[m]\npath=/x\nexclude = + /keep\n", "include rule"},
		{"[m]\npath=/x\nexclude = /a -\n", "qualifier"},
		{strings.Repeat("x", maxRsyncdLine+10) + "\n", "line longer than"},
	} {
		_, err := ParseRsyncd(strings.NewReader(tc.src), "e.conf")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.src, err, tc.want)
		}
	}
}

func TestParseRsyncdBooleans(t *testing.T) {
	for v, want := range map[string]bool{"yes": true, "No": false, "TRUE": true, "false": false, "1": true, "0": false} {
		c, err := ParseRsyncd(strings.NewReader("[m]\npath=/x\nuse chroot = "+v+"\n"), "b")
		if err != nil {
			t.Fatal(err)
		}
		if c.Modules[0].UseChroot != want {
			t.Errorf("use chroot = %s: got %v", v, c.Modules[0].UseChroot)
		}
	}
}

func TestLoadRsyncdMissing(t *testing.T) {
	_, err := LoadRsyncd(filepath.Join(t.TempDir(), "nope.conf"))
	if err == nil || !strings.Contains(err.Error(), "nope.conf") {
		t.Fatalf("err = %v", err)
	}
}

func FuzzParseRsyncd(f *testing.F) {
	f.Add(issueConf)
	f.Add("[a]\npath=/x\\\n y\n[global]\nlist=no\n[b]\npath = /z\nexclude = - /a /b\n")
	f.Add("&merge /x\n[\n]\n= \n\\")
	f.Add("hosts allow = 10.*, ::1/128 *\n[m]\npath=/\nmax connections=-1\n")
	f.Fuzz(func(t *testing.T, src string) {
		c, err := ParseRsyncd(strings.NewReader(src), "f")
		if err != nil {
			if c != nil {
				t.Fatal("config returned with an error")
			}
			return
		}
		for _, m := range c.Modules {
			if m.Name == "" || m.Path == "" || strings.Contains(m.Name, "/") || !m.ReadOnly {
				t.Fatalf("invalid module accepted: %+v", m)
			}
		}
	})
}

// "max connections per client" (a lanmirror extension) is a global
// parameter: a number >= 0; in a module it is ignored with a warning.
func TestParseRsyncdMaxConnsPerClient(t *testing.T) {
	c, err := ParseRsyncd(strings.NewReader("max connections per client = 4\n[m]\npath = /x\nmax connections per client = 9\n"), "e.conf")
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxConnsPerClient != 4 {
		t.Fatalf("MaxConnsPerClient = %d, want 4", c.MaxConnsPerClient)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "e.conf:4") || !strings.Contains(c.Warnings[0], "ignored") {
		t.Fatalf("warnings: %q", c.Warnings)
	}
	for _, bad := range []string{"-1", "many"} {
		_, err := ParseRsyncd(strings.NewReader("max connections per client = "+bad+"\n[m]\npath = /x\n"), "e.conf")
		if err == nil || !strings.Contains(err.Error(), "e.conf:1: max connections per client") {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
}
