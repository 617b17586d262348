package opts

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParsePortage27(t *testing.T) {
	o, err := Parse(strings.Fields("--server --sender -vlWtprz --timeout=180 --safe-links . gentoo-portage/"))
	if err != nil {
		t.Fatal(err)
	}
	if o.Verbose != 1 || !o.Links || !o.WholeFile || !o.Times || !o.Perms || !o.Recursive || !o.Compress {
		t.Fatalf("flags: %+v", o)
	}
	if o.Timeout != 180*time.Second || !o.SafeLinks || o.HasCaps {
		t.Fatalf("opts: %+v", o)
	}
	if len(o.Paths) != 1 || o.Paths[0] != "gentoo-portage/" {
		t.Fatalf("paths %q", o.Paths)
	}
}

func TestParsePortage31Probe(t *testing.T) {
	o, err := Parse(strings.Fields("--server --sender -vlWtprze.iLsfxCIvu --timeout=180 --safe-links --inplace . gentoo-portage/metadata/timestamp.chk"))
	if err != nil {
		t.Fatal(err)
	}
	if !o.HasCaps || o.Capabilities != "iLsfxCIvu" || !o.HasCap('v') || !o.HasCap('C') || o.HasCap('z') {
		t.Fatalf("caps %q", o.Capabilities)
	}
	if !o.Inplace || !o.Compress {
		t.Fatalf("opts %+v", o)
	}
	if o.Paths[0] != "gentoo-portage/metadata/timestamp.chk" {
		t.Fatalf("paths %q", o.Paths)
	}
}

func TestParseMisc(t *testing.T) {
	o, err := Parse(strings.Fields("--server --sender -logDtpre.iLsfxCIvu --list-only --compress-level=9 --compress-choice=zstd --checksum-seed=42 . m/ m/x"))
	if err != nil {
		t.Fatal(err)
	}
	if !o.Owner || !o.Group || !o.Devices || !o.ListOnly || o.CompressLvl != 9 || o.CompressChoice != "zstd" || !o.Compress || o.ChecksumSeed != 42 {
		t.Fatalf("opts %+v", o)
	}
	if len(o.Paths) != 2 {
		t.Fatalf("paths %q", o.Paths)
	}
}

func TestParseErrors(t *testing.T) {
	cases := map[string]string{
		"--server -vlr . m/":                          "read only",
		"--sender -r . m/":                            "--server",
		"--server --sender -vQ . m/":                  "unknown option -Q",
		"--server --sender --frobnicate . m/":         "unknown option",
		"--server --sender --timeout=x . m/":          "--timeout",
		"--server --sender -r .":                      "no source path",
		"--server --sender -H . m/":                   "not supported",
		"--server --sender -logDtpUre.iLsfxCIvu . m/": "-U (--atimes) is not supported",
		"--server --sender -logDtpNre.iLsfxCIvu . m/": "-N (--crtimes) is not supported",
		"--server --sender --files-from=x . m":        "not supported",
	}
	for in, want := range cases {
		_, err := Parse(strings.Fields(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", in, err, want)
		}
	}
	if _, err := Parse(strings.Fields("--server -r . m/")); !errors.Is(err, ErrReadOnly) {
		t.Errorf("want ErrReadOnly, got %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("--server --sender -vlWtprze.iLsfxCIvu --timeout=180 --safe-links . gentoo-portage/")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = Parse(strings.Split(s, " "))
	})
}

// TestCompressionArgs covers the forms a stock client uses to name a
// compressor: -z, --old-compress (zlib), --new-compress (zlibx, also
// from -zz), --compress-choice and --no-compress.
func TestCompressionArgs(t *testing.T) {
	cases := []struct {
		args   string
		on     bool
		choice string
	}{
		{"--server --sender -rz . m/", true, ""},
		{"--server --sender -r --old-compress . m/", true, "zlib"},
		{"--server --sender -r --new-compress . m/", true, "zlibx"},
		{"--server --sender -r --compress-choice=zstd . m/", true, "zstd"},
		{"--server --sender -rz --no-compress . m/", false, ""},
	}
	for _, c := range cases {
		o, err := Parse(strings.Fields(c.args))
		if err != nil {
			t.Fatalf("%q: %v", c.args, err)
		}
		if o.Compress != c.on || o.CompressChoice != c.choice {
			t.Errorf("%q: compress %v %q, want %v %q", c.args, o.Compress, o.CompressChoice, c.on, c.choice)
		}
	}
}

// TestMoreServerOptions covers options stock clients forward to a
// sender: accepted and ignored, acted upon, or refused with a reason.
func TestMoreServerOptions(t *testing.T) {
	ok := "--server --sender -rlpt --specials --devices --use-qsort --open-noatime --skip-compress=gz/xz --partial-dir=.p --max-delete=5 --ignore-missing-args --no-relative . m/"
	o, err := Parse(strings.Fields(ok))
	if err != nil {
		t.Fatal(err)
	}
	if !o.IgnoreMissingArgs || o.Relative || !o.Recursive {
		t.Errorf("options not applied: %+v", o)
	}
	for _, bad := range []string{"--remove-source-files", "--delete-missing-args", "--iconv=utf8"} {
		if _, err := Parse(strings.Fields("--server --sender -r " + bad + " . m/")); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
