package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "lanmirror.toml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadFileOverDefaults(t *testing.T) {
	p := writeFile(t, `
data = "/srv/lm"
http = "127.0.0.1:8080"
allow = ["10.13.18.*", "192.168.0.0/16"]
alias = ["/usr/portage/packages/All:All"]
max-cache = "200G"
tree-interval = "30m"
clean-interval = "24h"

[[module]]
name = "gentoo-portage"
path = "/srv/tree"
hosts-allow = ["10.0.0.0/8"]
max-connections = 5
timeout = "10m"

[[module]]
name = "other"
path = "/srv/other"
read-only = false
list = false
`)
	s := Defaults()
	if err := LoadFile(p, &s); err != nil {
		t.Fatal(err)
	}
	want := Defaults()
	want.DataDir = "/srv/lm"
	want.HTTPAddr = "127.0.0.1:8080"
	want.Allow = []string{"10.13.18.*", "192.168.0.0/16"}
	want.Aliases = []Alias{{Dir: "/usr/portage/packages/All", Name: "All"}}
	want.MaxCache = 200 << 30
	want.TreeInterval = 30 * time.Minute
	want.CleanInterval = 24 * time.Hour
	want.RsyncModules = []Module{
		{Name: "gentoo-portage", Path: "/srv/tree", HostsAllow: []string{"10.0.0.0/8"}, MaxConnections: 5,
			Timeout: 10 * time.Minute, ReadOnly: true, UseChroot: true, List: true},
		{Name: "other", Path: "/srv/other", ReadOnly: false, UseChroot: true, List: false},
	}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("loaded\n%+v\nwant\n%+v", s, want)
	}

	// What WriteTOML prints loads back to the same settings.
	var buf bytes.Buffer
	if err := s.WriteTOML(&buf); err != nil {
		t.Fatal(err)
	}
	again := Serve{}
	if err := LoadFile(writeFile(t, buf.String()), &again); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if !reflect.DeepEqual(again, want) {
		t.Fatalf("round trip\n%+v\nwant\n%+v\nfile:\n%s", again, want, buf.String())
	}
}

// Errors name the file, the line and the key.
func TestLoadFileErrors(t *testing.T) {
	for _, c := range []struct {
		name, text string
		want       []string // substrings of the error
	}{
		{"unknown top-level key", "data = \"/x\"\n\nhttp-port = 8080\n", []string{":3: http-port: unknown key"}},
		{"typo in a module", "[[module]]\nname = \"a\"\npath = \"/a\"\n\n[[module]]\nname = \"b\"\npath = \"/b\"\nhost-allow = [\"x\"]\n",
			[]string{":8: module.host-allow: unknown key"}},
		{"two unknown keys", "foo = 1\nbar = 2\n", []string{":1: foo: unknown key", ":2: bar: unknown key"}},
		{"wrong type", "data = \"/x\"\nhttp = 8080\n", []string{":2: http:"}},
		{"bad duration", "tree-interval = \"soon\"\n", []string{":1: tree-interval:"}},
		{"syntax", "data = \"/x\nhttp = \":80\"\n", []string{":1:"}},
		{"bad size", "\nmax-cache = \"lots\"\n", []string{":2: max-cache: bad size"}},
		{"module without path", "[[module]]\nname = \"a\"\n", []string{":1: module: a [[module]] needs name and path"}},
		{"module twice", "[[module]]\nname = \"a\"\npath = \"/a\"\n[[module]]\nname = \"a\"\npath = \"/b\"\n", []string{":4: module.name: module a defined twice"}},
		{"bad allow rule", "\n\nallow = [\"10.0.0.0/33\"]\n", []string{":3: allow:"}},
		{"bad hosts allow", "[[module]]\nname = \"a\"\npath = \"/a\"\nhosts-allow = [\"300.1.1.1\"]\n", []string{":1: module.hosts-allow: module a:"}},
		{"bad alias", "alias = [\"nocolon\"]\n", []string{":1: alias", "DIR:NAME"}},
	} {
		p := writeFile(t, c.text)
		s := Defaults()
		err := LoadFile(p, &s)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), p+w) && !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not contain %q", c.name, err, w)
			}
		}
		if !strings.HasPrefix(err.Error(), p) {
			t.Errorf("%s: error %q does not start with the file name", c.name, err)
		}
		var fe *FileError
		if !errors.As(err, &fe) {
			t.Errorf("%s: %T is not a FileError", c.name, err)
		}
	}
	if err := LoadFile(filepath.Join(t.TempDir(), "missing.toml"), &Serve{}); err == nil {
		t.Error("missing file: no error")
	}
}

// The annotated example in contrib/ loads and mentions every key.
func TestContribExample(t *testing.T) {
	const p = "../../contrib/lanmirror.toml"
	s := Defaults()
	if err := LoadFile(p, &s); err != nil {
		t.Fatal(err)
	}
	if len(s.RsyncModules) != 1 || s.RsyncModules[0].Name != DefaultModuleName || s.MaxCache != 200<<30 {
		t.Errorf("example loaded as %+v", s)
	}
	text, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"max-cache", "s3-local-cache"}
	st := reflect.TypeOf(Serve{})
	for i := range st.NumField() {
		if k := st.Field(i).Tag.Get("toml"); k != "-" && k != "" {
			keys = append(keys, k)
		}
	}
	mt := reflect.TypeOf(moduleTable{})
	for i := range mt.NumField() {
		keys = append(keys, strings.Split(mt.Field(i).Tag.Get("toml"), ",")[0])
	}
	for _, k := range keys {
		if !bytes.Contains(text, []byte("\n"+k+" =")) && !bytes.Contains(text, []byte("\n#"+k+" =")) {
			t.Errorf("contrib/lanmirror.toml does not show key %s", k)
		}
	}
}

// Every setting has its key in the file: a new field of Serve needs a toml
// tag (its flag's name) and a line in contrib/lanmirror.toml.
func TestEverySettingHasAKey(t *testing.T) {
	st := reflect.TypeOf(Serve{})
	for i := range st.NumField() {
		if _, ok := st.Field(i).Tag.Lookup("toml"); !ok {
			t.Errorf("config.Serve.%s has no toml tag (use its flag's name)", st.Field(i).Name)
		}
	}
}
