package interop

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// needBoth skips comparisons with stock rsyncd when the suite was narrowed
// to one server kind.
func needBoth(t *testing.T) {
	t.Helper()
	needRsync(t)
	t.Parallel()
	kinds := serverKinds()
	if !slices.Contains(kinds, kindLanmirror) || !slices.Contains(kinds, kindStock) {
		t.Skip("compares lanmirror with stock rsyncd; LANMIRROR_INTEROP_SERVERS excludes one")
	}
}

// sameOutput runs the client with args (the server URL is made by url)
// against stock rsyncd and lanmirror and requires the same exit status and
// the same standard output, line for line.
func sameOutput(t *testing.T, stock, lm *server, args []string, url string) {
	t.Helper()
	want := rsyncCmd(t, append(slices.Clone(args), stock.url(url))...)
	got := rsyncCmd(t, append(slices.Clone(args), lm.url(url))...)
	if got.code != want.code {
		t.Errorf("exit status %d, stock rsyncd %d\nlanmirror: %s\nstock: %s", got.code, want.code, got, want)
	}
	if got.stdout == want.stdout {
		if want.stdout == "" && want.code == 0 {
			t.Errorf("stock rsyncd printed nothing: the comparison proves nothing\n%s", want)
		}
		return
	}
	wl, gl := strings.Split(want.stdout, "\n"), strings.Split(got.stdout, "\n")
	var diffs []string
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			diffs = append(diffs, "  stock:     "+w+"\n  lanmirror: "+g)
			if len(diffs) == 15 {
				break
			}
		}
	}
	t.Errorf("rsync %s: output differs from stock rsyncd (%d vs %d lines), first differences:\n%s",
		strings.Join(args, " ")+" "+url, len(gl), len(wl), strings.Join(diffs, "\n"))
}

// TestListOnlyMatchesStock compares --list-only listings (modes, sizes,
// dates, names, order) of one tree served by lanmirror and by stock
// rsyncd: top level, recursive at each protocol, a subdirectory, a
// directory entry, a single file, with a client filter, and a missing path.
func TestListOnlyMatchesStock(t *testing.T) {
	needBoth(t)
	src := newTree(t, 51, 500)
	conf := serverConf{modules: []module{{name: "tree", path: src}}}
	stock := startServer(t, kindStock, conf)
	lm := startServer(t, kindLanmirror, conf)
	cases := []struct {
		name string
		args []string
		url  string
	}{
		{"top", []string{"--list-only"}, "tree/"},
		{"recursive", []string{"--list-only", "-r"}, "tree/"},
		{"recursive-links", []string{"--list-only", "-r", "-l"}, "tree/"},
		{"recursive/protocol=27", []string{"--list-only", "-r", "--protocol=27"}, "tree/"},
		{"recursive/protocol=29", []string{"--list-only", "-r", "--protocol=29"}, "tree/"},
		{"recursive/protocol=30", []string{"--list-only", "-r", "--protocol=30"}, "tree/"},
		{"subdir", []string{"--list-only"}, "tree/metadata/"},
		{"subdir-recursive", []string{"--list-only", "-r"}, "tree/profiles/"},
		{"dir-entry", []string{"--list-only"}, "tree/metadata"},
		{"single-file", []string{"--list-only"}, "tree/metadata/timestamp.chk"},
		{"utf8-dir", []string{"--list-only"}, "tree/metadata/news/"},
		{"filtered", []string{"--list-only", "-r", "--exclude=*.ebuild", "--exclude=/metadata/md5-cache"}, "tree/"},
		{"missing", []string{"--list-only"}, "tree/no/such/path"},
		{"dirs", []string{"--list-only", "-d"}, "tree/profiles/"},
		{"wildcard", []string{"--list-only"}, "tree/eclass/*.eclass"},
		{"recursive/protocol=28", []string{"--list-only", "-r", "-l", "--protocol=28"}, "tree/"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			sameOutput(t, stock, lm, c.args, c.url)
		})
	}
}

// moduleListConf has listed modules with and without comments (one with
// UTF-8), an unlisted one, and a motd.
func moduleListConf(path string) serverConf {
	return serverConf{
		motd: "Welcome to the lanmirror interop test mirror.\nSecond line of the motd.\n",
		modules: []module{
			{name: "gentoo-portage", path: path, comment: "Gentoo Portage tree"},
			{name: "other", path: path, comment: "café mirror, with spaces"},
			{name: "hidden", path: path, comment: "not listed", unlisted: true},
			{name: "nocomment", path: path},
		},
	}
}

// TestModuleListMatchesStock compares `rsync rsync://HOST/` (the module
// list with comments, after the motd) with stock rsyncd's for the same
// rsyncd.conf, and checks its content.
func TestModuleListMatchesStock(t *testing.T) {
	needBoth(t)
	conf := moduleListConf(t.TempDir())
	stock := startServer(t, kindStock, conf)
	lm := startServer(t, kindLanmirror, conf)
	sameOutput(t, stock, lm, nil, "")
	sameOutput(t, stock, lm, []string{"--list-only"}, "")
	sameOutput(t, stock, lm, []string{"--protocol=27"}, "")
	sameOutput(t, stock, lm, []string{"--protocol=29", "--list-only", "-r"}, "other/")
	// An unlisted module is still served to a client that names it.
	sameOutput(t, stock, lm, []string{"--list-only", "-r"}, "hidden/")
	// Without a motd.
	conf.motd = ""
	stock2 := startServer(t, kindStock, conf)
	lm2 := startServer(t, kindLanmirror, conf)
	sameOutput(t, stock2, lm2, nil, "")
	r := mustRsync(t, lm.url(""))
	for _, want := range []string{"Welcome to the lanmirror interop test mirror.", "Second line of the motd.",
		"gentoo-portage", "Gentoo Portage tree", "café mirror, with spaces", "nocomment"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("module list lacks %q:\n%s", want, r)
		}
	}
	if strings.Contains(r.stdout, "hidden") {
		t.Errorf("module list shows the unlisted module:\n%s", r)
	}
}

// TestRelativeMatchesStock: -R (--relative) listings and a -R transfer
// of a subdirectory give the same as stock rsyncd: the path below the
// module is kept on the client side.
func TestRelativeMatchesStock(t *testing.T) {
	needBoth(t)
	src := newTree(t, 52, 50)
	conf := serverConf{modules: []module{{name: "tree", path: src}}}
	stock := startServer(t, kindStock, conf)
	lm := startServer(t, kindLanmirror, conf)
	sameOutput(t, stock, lm, []string{"--list-only", "-r", "-R"}, "tree/metadata/news")
	sameOutput(t, stock, lm, []string{"--list-only", "-r", "-R", "--protocol=29"}, "tree/metadata/news")
	sameOutput(t, stock, lm, []string{"--list-only", "-R"}, "tree/metadata/timestamp.chk")
	r := mustRsync(t, "--list-only", "-r", "-R", lm.url("tree/metadata/news"))
	if !strings.Contains(r.stdout, "metadata/news") {
		t.Errorf("-R listing lacks the relative path:\n%s", r)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	mustRsync(t, "-a", "-R", lm.url("tree/metadata/news"), dst+"/")
	compareTrees(t, filepath.Join(src, "metadata", "news"), filepath.Join(dst, "metadata", "news"), archiveCmp(0))
}
