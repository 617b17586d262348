package clientconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lanmirror/lanmirror/internal/config"
)

func TestClientHost(t *testing.T) {
	for in, want := range map[string]string{
		"ws1": "ws1", "ws1.lan": "ws1.lan", "10.13.18.1": "10.13.18.1",
		"fd00::1": "[fd00::1]", "[fd00::1]": "[fd00::1]", " ws1 ": "ws1",
	} {
		got, err := clientHost(in)
		if err != nil || got != want {
			t.Errorf("clientHost(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "http://ws1", "ws1:8080", "ws1/x", "a b", "ws1\"", "$(id)"} {
		if _, err := clientHost(bad); err == nil {
			t.Errorf("clientHost(%q) accepted", bad)
		}
	}
}

func TestFromServeModules(t *testing.T) {
	gentooTree := t.TempDir()
	os.MkdirAll(filepath.Join(gentooTree, "profiles"), 0o755)
	os.WriteFile(filepath.Join(gentooTree, "profiles", "repo_name"), []byte("gentoo\n"), 0o644)
	other := t.TempDir()
	mod := func(name, path string) config.Module { return config.Module{Name: name, Path: path} }
	cases := []struct {
		mods         []config.Module
		tree, module string
		want         string
		err          bool
	}{
		{mods: nil, want: ""},
		{mods: []config.Module{mod("x", other), mod("gentoo-portage", other)}, want: "gentoo-portage"},
		{mods: []config.Module{mod("a", other), mod("b", gentooTree)}, tree: gentooTree, want: "b"},
		{mods: []config.Module{mod("only", other)}, want: "only"},
		{mods: []config.Module{mod("a", other), mod("portage", gentooTree)}, want: "portage"},
		{mods: []config.Module{mod("a", other), mod("b", other)}, err: true},
		{mods: []config.Module{mod("a", other), mod("b", other)}, module: "a", want: "a"},
		{mods: []config.Module{mod("a", other)}, module: "z", err: true},
	}
	for i, c := range cases {
		cfg := config.Defaults()
		cfg.RsyncModules = c.mods
		cfg.Tree = c.tree
		s, err := FromServe(&cfg, Options{Host: "ws1", Module: c.module})
		if c.err {
			if err == nil {
				t.Errorf("case %d: no error", i)
			}
			continue
		}
		if err != nil || s.Module != c.want {
			t.Errorf("case %d: module %q, %v; want %q", i, s.Module, err, c.want)
		}
	}
}

func TestServerURLsAndBlocks(t *testing.T) {
	cfg := config.Defaults()
	cfg.HTTPAddr = "10.0.0.1:3142"
	cfg.RsyncAddr = ":873"
	cfg.RsyncModules = []config.Module{{Name: "gentoo-portage", Path: "/x"}}
	s, err := FromServe(&cfg, Options{Host: "mirror.lan"})
	if err != nil {
		t.Fatal(err)
	}
	if s.HTTPBase() != "http://mirror.lan:3142" || s.SyncURI() != "rsync://mirror.lan/gentoo-portage" {
		t.Errorf("%s %s", s.HTTPBase(), s.SyncURI())
	}
	files := []string{}
	for _, b := range s.Blocks() {
		files = append(files, b.File)
		for _, l := range b.Lines {
			if strings.Contains(l, "LANMIRROR_EOF") || strings.Contains(l, "'") && b.Append && !strings.HasPrefix(l, "#") {
				t.Errorf("line %q would break the script", l)
			}
		}
	}
	if strings.Join(files, " ") != ReposConf+" "+MakeConf+" "+MirrorsFile {
		t.Errorf("blocks for %v (no binary packages configured)", files)
	}
	if len(s.Notes()) != 0 {
		t.Errorf("notes %v", s.Notes())
	}
	cfg.Binpkgs = "/var/cache/binpkgs"
	s, _ = FromServe(&cfg, Options{Host: "mirror.lan"})
	bs := s.Blocks()
	if last := bs[len(bs)-1]; last.File != BinreposConf || !strings.Contains(strings.Join(last.Lines, "\n"), "sync-uri = http://mirror.lan:3142/binpkgs\n") {
		t.Errorf("binrepos block %v", last)
	}
	cfg.HTTPAddr = ""
	s, _ = FromServe(&cfg, Options{Host: "mirror.lan"})
	if len(s.Blocks()) != 1 || s.Binpkgs || len(s.Notes()) != 1 {
		t.Errorf("HTTP off: %d blocks, binpkgs %v, notes %v", len(s.Blocks()), s.Binpkgs, s.Notes())
	}
}
