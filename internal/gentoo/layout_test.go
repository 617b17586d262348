package gentoo

import (
	"bytes"
	"strings"
	"testing"
)

func TestLayoutPathBLAKE2B8(t *testing.T) {
	l, err := ParseLayout(strings.NewReader("[structure]\n0=filename-hash BLAKE2B 8\n1=flat\n"))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"which-2.23.tar.gz":  "80/which-2.23.tar.gz",
		"psmisc-23.7.tar.xz": "28/psmisc-23.7.tar.xz",
	} {
		if got := l.Path(name); got != want {
			t.Errorf("Path(%q) = %q, want %q", name, got, want)
		}
	}
	if l.String() != "filename-hash BLAKE2B 8" {
		t.Errorf("String = %q", l.String())
	}
}

func TestLayoutMultiLevel(t *testing.T) {
	l, err := FilenameHash("BLAKE2B", 8, 4)
	if err != nil {
		t.Fatal(err)
	}
	got := l.Path("which-2.23.tar.gz")
	one, _ := FilenameHash("BLAKE2B", 12)
	g1 := one.Path("which-2.23.tar.gz")
	// 8 bits then the next 4 bits: the same 3 hex digits as one 12-bit level.
	if len(got) != len("80/x/which-2.23.tar.gz") || got[2] != '/' || got[4] != '/' ||
		got[:2]+got[3:4] != g1[:3] || got[:2] != "80" {
		t.Errorf("8:4 path %q, 12 path %q", got, g1)
	}
}

func TestParseLayout(t *testing.T) {
	cases := []struct{ conf, want string }{
		{"", "flat"},
		{"[other]\na=b\n", "flat"},
		{"[structure]\n0=flat\n", "flat"},
		{"# comment\n[structure]\n0 = filename-hash BLAKE2B 8\n", "filename-hash BLAKE2B 8"},
		{"[structure]\n0=content-hash SHA512 8:8:8\n1=filename-hash BLAKE2B 8\n", "filename-hash BLAKE2B 8"},
		{"[structure]\n0=filename-hash NOSUCH 8\n1=filename-hash SHA512 8:8\n", "filename-hash SHA512 8:8"},
		{"[structure]\n0=filename-hash BLAKE2B 7\n1=flat\n", "flat"},
		{"[structure]\n1=filename-hash BLAKE2B 8\n", "flat"}, // keys must start at 0
		{"[structure]\n0: filename-hash BLAKE2B 8\n", "filename-hash BLAKE2B 8"},
	}
	for _, c := range cases {
		l, err := ParseLayout(strings.NewReader(c.conf))
		if err != nil {
			t.Errorf("ParseLayout(%q): %v", c.conf, err)
			continue
		}
		if l.String() != c.want {
			t.Errorf("ParseLayout(%q) = %q, want %q", c.conf, l, c.want)
		}
	}
	for _, bad := range []string{"[structure\n0=flat\n", "0=flat\n", "[structure]\nno value line\n"} {
		if _, err := ParseLayout(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseLayout(%q) accepted bad syntax", bad)
		}
	}
	if l := (Layout{}); l.Path("a b.tar") != "a b.tar" || !l.Flat() {
		t.Error("zero Layout is not flat")
	}
}

func TestServedLayoutConf(t *testing.T) {
	l, err := ParseLayout(bytes.NewReader(ServedLayoutConf()))
	if err != nil {
		t.Fatal(err)
	}
	if l.Path("which-2.23.tar.gz") != "80/which-2.23.tar.gz" {
		t.Errorf("served layout parses to %v", l)
	}
	if !bytes.Contains(ServedLayoutConf(), []byte("\n1=flat\n")) {
		t.Error("served layout.conf does not offer flat")
	}
}
