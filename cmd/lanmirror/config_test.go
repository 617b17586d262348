package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/lanmirror/lanmirror/internal/config"
	"github.com/spf13/pflag"
)

// parseServe parses serve's flags as serve does and returns the effective
// settings.
func parseServe(t *testing.T, args ...string) (*config.Serve, error) {
	t.Helper()
	cfg := &config.Serve{}
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	finish := serveFlags(fs, cfg)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return cfg, finish()
}

// The config file sits between the defaults and the flags: a flag given
// replaces the file's value, a flag not given keeps it; --rsync-module
// joins the file's modules (replacing the one of its name).
func TestConfigFileUnderFlags(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "lanmirror.toml")
	os.WriteFile(file, []byte(`
data = "`+dir+`/data"
http = "127.0.0.1:1"
allow = ["10.13.18.*"]
mirror = ["http://a.example", "http://b.example"]
max-cache = "1G"
tree-keep = 7

[[module]]
name = "one"
path = "/srv/one"
hosts-allow = ["10.0.0.0/8"]

[[module]]
name = "two"
path = "/srv/two"
`), 0o644)

	cfg, err := parseServe(t, "--config", file)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != dir+"/data" || cfg.HTTPAddr != "127.0.0.1:1" || !reflect.DeepEqual(cfg.Allow, []string{"10.13.18.*"}) ||
		len(cfg.Mirrors) != 2 || cfg.MaxCache != 1<<30 || cfg.TreeKeep != 7 || cfg.RsyncAddr != config.DefaultRsyncAddr {
		t.Fatalf("from the file: %+v", cfg)
	}
	if len(cfg.RsyncModules) != 2 || cfg.RsyncModules[0].HostsAllow[0] != "10.0.0.0/8" || !cfg.RsyncModules[1].ReadOnly {
		t.Fatalf("modules from the file: %+v", cfg.RsyncModules)
	}

	cfg, err = parseServe(t, "--config", file, "--http", "127.0.0.1:2", "--mirror", "http://c.example",
		"--max-cache", "2G", "--rsync-module", "two=/srv/new", "--rsync-module", "three=/srv/three")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != "127.0.0.1:2" || !reflect.DeepEqual(cfg.Mirrors, []string{"http://c.example"}) || cfg.MaxCache != 2<<30 {
		t.Fatalf("flags do not override the file: %+v", cfg)
	}
	if cfg.DataDir != dir+"/data" || cfg.TreeKeep != 7 || !reflect.DeepEqual(cfg.Allow, []string{"10.13.18.*"}) {
		t.Fatalf("the file's other settings lost: %+v", cfg)
	}
	var mods []string
	for _, m := range cfg.RsyncModules {
		mods = append(mods, m.Name+"="+m.Path)
	}
	if got := strings.Join(mods, " "); got != "one=/srv/one two=/srv/new three=/srv/three" {
		t.Fatalf("modules: %s", got)
	}

	// A broken file stops everything, naming file, line and key.
	os.WriteFile(file, []byte("data = \"/x\"\nhttp-addr = \":80\"\n"), 0o644)
	if _, err := parseServe(t, "--config", file); err == nil || !strings.Contains(err.Error(), file+":2: http-addr: unknown key") {
		t.Fatalf("unknown key: %v", err)
	}
	if _, err := parseServe(t, "--config", filepath.Join(dir, "none.toml")); err == nil {
		t.Fatal("missing --config file: no error")
	}
}

// The default file is read when it exists and no --config is given;
// an empty --config reads none.
func TestConfigFileDefault(t *testing.T) {
	dir := t.TempDir()
	def := filepath.Join(dir, "lanmirror.toml")
	parse := func(args ...string) *config.Serve {
		t.Helper()
		sf := newSettingsFlags()
		sf.defaultConfig = def
		fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
		sf.on(fs)
		sf.storeFlags()
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		cfg, err := sf.settings()
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	if got := parse().DataDir; got != config.DefaultDataDir {
		t.Fatalf("no default file: data %s", got)
	}
	os.WriteFile(def, []byte("data = \"/from/default\"\n"), 0o644)
	if got := parse().DataDir; got != "/from/default" {
		t.Fatalf("default file: data %s", got)
	}
	if got := parse("--config", "").DataDir; got != config.DefaultDataDir {
		t.Fatalf("--config '': data %s", got)
	}
	if got := parse("--data", "/flag").DataDir; got != "/flag" {
		t.Fatalf("flag over default file: data %s", got)
	}
}

// check-config prints the effective settings and names file, line and key
// of every error in the file.
func TestCheckConfigFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "lanmirror.toml")
	os.WriteFile(file, []byte(fmt.Sprintf("data = %q\nallow = [\"10.13.18.*\"]\n\n[[module]]\nname = \"tree\"\npath = %q\n", dir, dir)), 0o644)
	out, err := runCheckConfig(t, "--config", file, "--http", "127.0.0.1:8080")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{
		"config file: " + file + "\n",
		"data = \"" + dir + "\"\n",
		"http = \"127.0.0.1:8080\"\n",
		"allow = [\"10.13.18.*\"]\n",
		"[[module]]\n",
		"module tree\n",
		"configuration OK\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	os.WriteFile(file, []byte("data = \"/x\"\nfoo = 1\n\n[[module]]\nname = \"m\"\npath = \"/m\"\nread_only = true\n"), 0o644)
	out, err = runCheckConfig(t, "--config", file)
	if err == nil {
		t.Fatalf("unknown keys accepted:\n%s", out)
	}
	for _, want := range []string{
		"error: " + file + ":2: foo: unknown key\n",
		"error: " + file + ":7: module.read_only: unknown key\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	os.WriteFile(file, []byte("user = \"no-such-user-lanmirror\"\nupstream-proxy = \"ftp://x\"\n"), 0o644)
	out, err = runCheckConfig(t, "--config", file)
	if err == nil || !strings.Contains(out, "error: user: uid no-such-user-lanmirror") || !strings.Contains(out, `error: upstream-proxy "ftp://x"`) {
		t.Fatalf("unknown user, bad proxy: %v\n%s", err, out)
	}
	// The example in contrib/ passes (its paths need not exist).
	if out, err := runCheckConfig(t, "--config", "../../contrib/lanmirror.toml"); err != nil {
		t.Fatalf("contrib/lanmirror.toml: %v\n%s", err, out)
	}
}

// serve takes its settings from the file: HTTP address, data directory
// and mirror come from --config alone.
func TestServeConfigFile(t *testing.T) {
	up := newHTUpstream(t)
	data := htData(100_000, 3)
	up.put("/distfiles/cf-1.tar.gz", data)
	dir := t.TempDir()
	addr := htFreeAddr(t)
	file := filepath.Join(dir, "lanmirror.toml")
	os.WriteFile(file, []byte(fmt.Sprintf("data = %q\nhttp = %q\nrsync = \"\"\nmirror = [%q]\n", filepath.Join(dir, "data"), addr, up.ts.URL)), 0o644)
	startLanmirror(t, addr, "serve", "--allow-root", "--config", file)
	resp, err := http.Get("http://" + addr + "/distfiles/cf-1.tar.gz")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || string(got) != string(data) {
		t.Fatalf("GET: %d %v, %d bytes", resp.StatusCode, err, len(got))
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "distfiles", "cf-1.tar.gz")); err != nil {
		t.Fatalf("not cached in the file's data directory: %v", err)
	}
}
