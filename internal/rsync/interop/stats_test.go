package interop

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// portageOpts are Portage's default PORTAGE_RSYNC_OPTS (make.globals),
// exactly as emerge --sync passes them.
var portageOpts = []string{
	"--recursive", "--links", "--safe-links", "--perms", "--times", "--omit-dir-times", "--compress",
	"--force", "--whole-file", "--delete", "--stats", "--human-readable", "--timeout=180",
	"--exclude=/distfiles", "--exclude=/local", "--exclude=/packages", "--exclude=/.git",
}

// portageArgs returns Portage's options with --compress dropped unless
// compress, --protocol=N added when proto > 0, then extra.
func portageArgs(proto int, compress bool, extra ...string) []string {
	var args []string
	for _, a := range portageOpts {
		if a == "--compress" && !compress {
			continue
		}
		args = append(args, a)
	}
	if proto > 0 {
		args = append(args, fmt.Sprintf("--protocol=%d", proto))
	}
	return append(args, extra...)
}

// statValue returns the number after "name:" in rsync --stats output
// ("Number of regular files transferred: 1,234", "Matched data: 1.23K
// bytes"), understanding thousands separators and -h suffixes.
func statValue(t *testing.T, r *rsyncResult, name string) float64 {
	t.Helper()
	for _, line := range strings.Split(r.stdout, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), name+":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			break
		}
		v, err := parseHuman(f[0])
		if err != nil {
			t.Fatalf("stat %q: %v\n%s", name, err, r)
		}
		return v
	}
	t.Fatalf("no %q in rsync --stats output:\n%s", name, r)
	return 0
}

// parseHuman parses "1,234", "0", "1.23K", "4.56M".
func parseHuman(s string) (float64, error) {
	s = strings.ReplaceAll(s, ",", "")
	mult := 1.0
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1e3, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1e6, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		mult, s = 1e9, strings.TrimSuffix(s, "G")
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("parse %q: %w", s, err)
	}
	return v * mult, nil
}

func TestParseHuman(t *testing.T) {
	for in, want := range map[string]float64{"0": 0, "1,234": 1234, "1.50K": 1500, "2M": 2e6, "3.25G": 3.25e9} {
		if got, err := parseHuman(in); err != nil || got != want {
			t.Errorf("parseHuman(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := parseHuman("x"); err == nil {
		t.Error("parseHuman(x): no error")
	}
}
