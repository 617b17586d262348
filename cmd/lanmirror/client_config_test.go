package main

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/binpkg"
	"github.com/lanmirror/lanmirror/internal/config"
	"github.com/lanmirror/lanmirror/internal/testutil"
	"github.com/spf13/pflag"
)

// ccRun runs the command line in-process and returns its output.
func ccRun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

var ccBlockHeader = regexp.MustCompile(`^# ---- (/\S+)( \(add these lines\))? ----$`)

// ccBlocks splits client-config's text output by file header.
func ccBlocks(t *testing.T, out string) map[string]string {
	t.Helper()
	blocks := map[string]string{}
	cur := ""
	for _, l := range strings.Split(out, "\n") {
		if m := ccBlockHeader.FindStringSubmatch(l); m != nil {
			cur = m[1]
			if _, dup := blocks[cur]; dup {
				t.Fatalf("two blocks for %s", cur)
			}
			blocks[cur] = ""
			continue
		}
		if cur != "" {
			blocks[cur] += l + "\n"
		}
	}
	for f, b := range blocks {
		blocks[f] = strings.TrimRight(b, "\n") + "\n"
	}
	return blocks
}

// ccParseINI is a small INI parser as Portage's configparser reads
// repos.conf and binrepos.conf: [section], "key = value", # comments.
func ccParseINI(t *testing.T, text string) map[string]map[string]string {
	t.Helper()
	ini := map[string]map[string]string{}
	var sec map[string]string
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";"):
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			name := l[1 : len(l)-1]
			if ini[name] != nil {
				t.Fatalf("duplicate section [%s]", name)
			}
			sec = map[string]string{}
			ini[name] = sec
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok || sec == nil {
				t.Fatalf("INI line %q outside a section or without '='", l)
			}
			sec[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return ini
}

func ccBash(t *testing.T, script string, env ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash %q: %v\n%s", script, err, out)
	}
	return string(out)
}

// ccMakeConfVars checks the make.conf lines with bash -n, sources them and
// returns the variables they set.
func ccMakeConfVars(t *testing.T, text string) map[string]string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "make.conf")
	os.WriteFile(f, []byte(text), 0o644)
	ccBash(t, `bash -n "`+f+`"`)
	vars := map[string]string{}
	for _, l := range strings.Split(text, "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, _, ok := strings.Cut(l, "=")
		if !ok || !regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`).MatchString(k) {
			t.Fatalf("make.conf line %q is not KEY=value", l)
		}
		out := ccBash(t, `set -u; . "`+f+`"; printf '%s' "$`+k+`"`)
		vars[k] = out
	}
	return vars
}

// ccRecorder is a stand-in for lanmirror's fetch-through route: it records
// each request and answers with fixed bytes (honouring Range).
type ccRecorder struct {
	mu   sync.Mutex
	reqs []*http.Request
	body []byte
}

func (rc *ccRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, r.Clone(context.Background()))
	rc.mu.Unlock()
	http.ServeContent(w, r, "", time.Unix(1700000000, 0), bytes.NewReader(rc.body))
}

func (rc *ccRecorder) last(t *testing.T) *http.Request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.reqs) == 0 {
		t.Fatal("no request reached the server")
	}
	return rc.reqs[len(rc.reqs)-1]
}

// ccPortageRun runs a FETCHCOMMAND/RESUMECOMMAND value the way Portage does:
// split into words, ${DISTDIR}, ${FILE} and ${URI} substituted in each word,
// executed without a shell. eval "set -- ..." in bash performs the same
// word split and substitution for these quoted words.
func ccPortageRun(t *testing.T, fcmd, distdir, file, uri string) {
	t.Helper()
	ccBash(t, `eval "set -- $FCMD"; exec "$@" -q`,
		"FCMD="+fcmd, "DISTDIR="+distdir, "FILE="+file, "URI="+uri, "no_proxy=*", "http_proxy=")
}

func TestClientConfigAgainstServer(t *testing.T) {
	for _, tool := range []string{"bash", "wget", "sh"} {
		testutil.RequireTool(t, tool)
	}
	// A server with the binary package handler at /binpkgs/ and a ccRecorder
	// at /fetch/, on loopback.
	pkgdir := t.TempDir()
	pkg := []byte("a binary package's bytes, served as is")
	os.MkdirAll(filepath.Join(pkgdir, "app-misc"), 0o755)
	os.WriteFile(filepath.Join(pkgdir, "app-misc", "hello-1.tbz2"), pkg, 0o644)
	bh, err := binpkg.NewHandler(pkgdir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bh.(*binpkg.Handler).Close() })
	rec := &ccRecorder{body: bytes.Repeat([]byte("distfile "), 4000)}
	mux := http.NewServeMux()
	mux.Handle("/binpkgs/", http.StripPrefix("/binpkgs", bh))
	mux.Handle("/fetch/", rec)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	_, portStr, _ := strings.Cut(strings.TrimPrefix(srv.URL, "http://"), ":")
	base := "http://127.0.0.1:" + portStr

	tree := t.TempDir()
	out, err := ccRun(t, "client-config", "--server", "127.0.0.1",
		"--http", "127.0.0.1:"+portStr, "--rsync", ":10873", "--tree", tree, "--binpkgs", pkgdir)
	if err != nil {
		t.Fatalf("client-config: %v\n%s", err, out)
	}
	blocks := ccBlocks(t, out)
	for _, f := range []string{"/etc/portage/repos.conf/gentoo.conf", "/etc/portage/make.conf", "/etc/portage/mirrors", "/etc/portage/binrepos.conf/lanmirror.conf"} {
		if _, ok := blocks[f]; !ok {
			t.Fatalf("no block for %s in:\n%s", f, out)
		}
	}

	// repos.conf: the served module (--tree is served as gentoo-portage).
	repos := ccParseINI(t, blocks["/etc/portage/repos.conf/gentoo.conf"])
	want := map[string]string{"location": "/var/db/repos/gentoo", "sync-type": "rsync", "sync-uri": "rsync://127.0.0.1:10873/gentoo-portage", "auto-sync": "yes"}
	for k, v := range want {
		if repos["gentoo"][k] != v {
			t.Errorf("repos.conf %s = %q, want %q", k, repos["gentoo"][k], v)
		}
	}

	// make.conf: shell assignments with the server's URL.
	vars := ccMakeConfVars(t, blocks["/etc/portage/make.conf"])
	if vars["GENTOO_MIRRORS"] != base {
		t.Errorf("GENTOO_MIRRORS = %q, want %q", vars["GENTOO_MIRRORS"], base)
	}
	if !strings.Contains(blocks["/etc/portage/make.conf"], "#http_proxy=\""+base+"\"") {
		t.Error("no http_proxy alternative")
	}
	// The fetch commands, run as Portage runs them with stock wget, reach
	// the fetch-through route with the name and the original URI.
	distdir := t.TempDir()
	uri := "https://example.org/dl/foo-1.0.tar.gz?a=1&b=x;y"
	ccPortageRun(t, vars["FETCHCOMMAND"], distdir, "foo-1.0.tar.gz", uri)
	r := rec.last(t)
	if r.URL.Path != "/fetch/foo-1.0.tar.gz" {
		t.Errorf("fetch path %q", r.URL.Path)
	}
	if r.URL.RawQuery != "uri="+uri {
		t.Errorf("fetch query %q, want uri=%s", r.URL.RawQuery, uri)
	}
	if got, _ := os.ReadFile(filepath.Join(distdir, "foo-1.0.tar.gz")); !bytes.Equal(got, rec.body) {
		t.Error("FETCHCOMMAND did not write the file")
	}
	os.WriteFile(filepath.Join(distdir, "bar.tar.gz"), rec.body[:1000], 0o644)
	ccPortageRun(t, vars["RESUMECOMMAND"], distdir, "bar.tar.gz", "http://example.org/bar.tar.gz")
	if r := rec.last(t); r.URL.Path != "/fetch/bar.tar.gz" || r.Header.Get("Range") != "bytes=1000-" {
		t.Errorf("RESUMECOMMAND: %s Range %q", r.URL, r.Header.Get("Range"))
	}
	if got, _ := os.ReadFile(filepath.Join(distdir, "bar.tar.gz")); !bytes.Equal(got, rec.body) {
		t.Error("RESUMECOMMAND did not complete the file")
	}

	// mirrors: the local entry.
	if !strings.Contains(blocks["/etc/portage/mirrors"], "\nlocal "+base+"\n") {
		t.Errorf("mirrors block:\n%s", blocks["/etc/portage/mirrors"])
	}

	// binrepos.conf: the sync-uri serves Packages, and the repo's own fetch
	// command fetches a package by its PATH.
	bin := ccParseINI(t, blocks["/etc/portage/binrepos.conf/lanmirror.conf"])["lanmirror"]
	if bin["sync-uri"] != base+"/binpkgs" {
		t.Fatalf("binrepos sync-uri %q", bin["sync-uri"])
	}
	resp, err := http.Get(bin["sync-uri"] + "/Packages")
	if err != nil {
		t.Fatal(err)
	}
	idx := new(bytes.Buffer)
	idx.ReadFrom(resp.Body)
	resp.Body.Close()
	// (hello-1.tbz2 has no xpak metadata, so the index lists no package.)
	if resp.StatusCode != 200 || !strings.HasPrefix(idx.String(), "PACKAGES: 0\nTIMESTAMP: ") || !strings.Contains(idx.String(), "\nVERSION: 0\n") {
		t.Errorf("Packages at the sync-uri: %d\n%s", resp.StatusCode, idx)
	}
	ccPortageRun(t, bin["fetchcommand"], distdir, "hello-1.tbz2", bin["sync-uri"]+"/app-misc/hello-1.tbz2")
	if got, _ := os.ReadFile(filepath.Join(distdir, "hello-1.tbz2")); !bytes.Equal(got, pkg) {
		t.Error("binrepos fetchcommand did not fetch the package")
	}

	// --format=sh writes the same blocks below PORTAGE_CONFIGROOT; run twice,
	// nothing is duplicated.
	sh, err := ccRun(t, "client-config", "--server", "127.0.0.1", "--format", "sh",
		"--http", "127.0.0.1:"+portStr, "--rsync", ":10873", "--tree", tree, "--binpkgs", pkgdir)
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "setup.sh")
	os.WriteFile(script, []byte(sh), 0o755)
	cfgroot := t.TempDir()
	ccBash(t, `sh -n "`+script+`"`)
	for range 2 {
		ccBash(t, `sh "`+script+`"`, "PORTAGE_CONFIGROOT="+cfgroot)
	}
	read := func(f string) string {
		b, err := os.ReadFile(filepath.Join(cfgroot, f))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := read("etc/portage/repos.conf/gentoo.conf"); got != blocks["/etc/portage/repos.conf/gentoo.conf"] {
		t.Errorf("script's gentoo.conf:\n%s\nwant\n%s", got, blocks["/etc/portage/repos.conf/gentoo.conf"])
	}
	if got := read("etc/portage/binrepos.conf/lanmirror.conf"); got != blocks["/etc/portage/binrepos.conf/lanmirror.conf"] {
		t.Errorf("script's lanmirror.conf:\n%s", got)
	}
	if got := read("etc/portage/mirrors"); got != "local "+base+"\n" {
		t.Errorf("script's mirrors:\n%q", got)
	}
	mc := read("etc/portage/make.conf")
	if mc != "# BEGIN lanmirror client-config\n"+blocks["/etc/portage/make.conf"]+"# END lanmirror client-config\n" {
		t.Errorf("script's make.conf after two runs:\n%s", mc)
	}
	// The user's own lines stay; the block is replaced, not repeated.
	os.WriteFile(filepath.Join(cfgroot, "etc/portage/make.conf"), []byte("COMMON_FLAGS=\"-O2\"\n"+mc+"USE=\"x\"\n"), 0o644)
	ccBash(t, `sh "`+script+`"`, "PORTAGE_CONFIGROOT="+cfgroot)
	mc = read("etc/portage/make.conf")
	if !strings.HasPrefix(mc, "COMMON_FLAGS=\"-O2\"\nUSE=\"x\"\n# BEGIN") || strings.Count(mc, "GENTOO_MIRRORS=") != 1 {
		t.Errorf("script's make.conf with other lines:\n%s", mc)
	}
	if v := ccMakeConfVars(t, mc); v["FETCHCOMMAND"] != vars["FETCHCOMMAND"] {
		t.Errorf("script's FETCHCOMMAND %q", v["FETCHCOMMAND"])
	}
}

func TestClientConfigSettings(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "rsyncd.conf")
	os.WriteFile(conf, []byte("port = 10873\nuse chroot = yes\nread only = yes\n[niden-gentoo-portage]\npath = "+dir+"\nexclude = /distfiles /packages\n"), 0o644)

	cases := []struct {
		args    []string
		has     []string
		hasNot  []string
		wantErr string
	}{
		{args: []string{"--rsyncd-conf", conf},
			has:    []string{"sync-uri = rsync://ws1:10873/niden-gentoo-portage\n", `GENTOO_MIRRORS="http://ws1:8080"`},
			hasNot: []string{"binrepos.conf"}},
		{args: []string{"--rsyncd-conf", conf, "--rsync", "0.0.0.0:873"},
			has: []string{"sync-uri = rsync://ws1/niden-gentoo-portage\n"}},
		{args: []string{"--rsync-module", "a=" + dir, "--rsync-module", "b=" + dir, "--module", "b", "--http", ":80"},
			has: []string{"sync-uri = rsync://ws1/b\n", `GENTOO_MIRRORS="http://ws1"`, "local http://ws1\n"}},
		{args: []string{"--rsync-module", "a=/x", "--rsync-module", "b=/y"}, wantErr: "--module"},
		{args: []string{"--rsync-module", "a=/x", "--module", "c"}, wantErr: "no such rsync module"},
		{args: []string{"--http", "", "--rsync-module", "g=/x"},
			has:    []string{"sync-uri = rsync://ws1/g\n", "HTTP side is off"},
			hasNot: []string{"make.conf", "mirrors", "binrepos"}},
		{args: []string{"--rsync", "", "--binhost-upstream", "https://binhost.example/amd64"},
			has:    []string{"does not serve the Gentoo tree", "sync-uri = http://ws1:8080/binpkgs\n"},
			hasNot: []string{"/etc/portage/repos.conf", "verify-signature"}},
		{args: []string{"--format", "xml"}, wantErr: "--format"},
		{args: []string{"--http", "nonsense"}, wantErr: "--http"},
	}
	for _, c := range cases {
		args := append([]string{"client-config", "--server", "ws1"}, c.args...)
		out, err := ccRun(t, args...)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%v: err = %v, want %q", c.args, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", c.args, err)
			continue
		}
		for _, s := range c.has {
			if !strings.Contains(out, s) {
				t.Errorf("%v: output lacks %q:\n%s", c.args, s, out)
			}
		}
		for _, s := range c.hasNot {
			if strings.Contains(out, s) {
				t.Errorf("%v: output has %q:\n%s", c.args, s, out)
			}
		}
	}
	if _, err := ccRun(t, "client-config"); err == nil || !strings.Contains(err.Error(), "--server") {
		t.Errorf("no --server: %v", err)
	}
	out, err := ccRun(t, "client-config", "--server", "fd00::1", "--rsync-module", "g=/x", "--rsync", "[::]:8873")
	if err != nil || !strings.Contains(out, "rsync://[fd00::1]:8873/g\n") || !strings.Contains(out, "http://[fd00::1]:8080") {
		t.Errorf("IPv6 server: %v\n%s", err, out)
	}
	if _, err := ccRun(t, "client-config", "--server", "http://ws1/"); err == nil {
		t.Error("a URL accepted as --server")
	}
}

// The printed configuration against the real HTTP side (httpd's component
// and test upstream): Portage's mirror requests, the fetch-through
// commands, the local mirror and the binhost all reach what they should.
func TestClientConfigWithLanmirrorHTTP(t *testing.T) {
	testutil.RequireTool(t, "wget")
	up := newHTUpstream(t)
	dist := bytes.Repeat([]byte("distfile bytes "), 3000)
	up.put("/distfiles/foo-1.0.tar.gz", dist)
	pkgdir := t.TempDir()
	pkg := []byte("package bytes served as is")
	os.MkdirAll(filepath.Join(pkgdir, "All"), 0o755)
	os.WriteFile(filepath.Join(pkgdir, "All", "foo-1.0.tbz2"), pkg, 0o644)
	cfg := &config.Serve{Mirrors: []string{up.ts.URL}, Binpkgs: pkgdir}
	srv := startHTTPComponent(t, cfg)

	out, err := ccRun(t, "client-config", "--server", "127.0.0.1", "--http", cfg.HTTPAddr, "--rsync", "", "--binpkgs", pkgdir)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	blocks := ccBlocks(t, out)
	vars := ccMakeConfVars(t, blocks["/etc/portage/make.conf"])
	if vars["GENTOO_MIRRORS"] != srv.url {
		t.Fatalf("GENTOO_MIRRORS %q, server %s", vars["GENTOO_MIRRORS"], srv.url)
	}
	if !strings.Contains(blocks["/etc/portage/mirrors"], "local "+srv.url+"\n") {
		t.Fatalf("mirrors block:\n%s", blocks["/etc/portage/mirrors"])
	}
	dir := t.TempDir()
	// Portage with GENTOO_MIRRORS (or the local mirror): layout.conf first,
	// then the file.
	ccPortageRun(t, vars["FETCHCOMMAND"], dir, ".layout.conf.127.0.0.1", vars["GENTOO_MIRRORS"]+"/distfiles/layout.conf")
	// The fetch-through: a name the mirror has, whatever the original URI.
	ccPortageRun(t, vars["FETCHCOMMAND"], dir, "foo-1.0.tar.gz", "https://origin.invalid/foo-1.0.tar.gz")
	if got, _ := os.ReadFile(filepath.Join(dir, "foo-1.0.tar.gz")); !bytes.Equal(got, dist) {
		t.Fatal("FETCHCOMMAND through lanmirror: wrong bytes")
	}
	os.WriteFile(filepath.Join(dir, "foo-1.0.tar.gz"), dist[:5000], 0o644)
	ccPortageRun(t, vars["RESUMECOMMAND"], dir, "foo-1.0.tar.gz", "https://origin.invalid/foo-1.0.tar.gz")
	if got, _ := os.ReadFile(filepath.Join(dir, "foo-1.0.tar.gz")); !bytes.Equal(got, dist) {
		t.Fatal("RESUMECOMMAND through lanmirror: wrong bytes")
	}
	if c := up.count("/distfiles/foo-1.0.tar.gz"); c != 1 {
		t.Errorf("upstream GETs = %d, want 1 (then served from the cache)", c)
	}
	// The binhost: Packages at the sync-uri, the package by its path with
	// the repository's own fetch command.
	bin := ccParseINI(t, blocks["/etc/portage/binrepos.conf/lanmirror.conf"])["lanmirror"]
	ccPortageRun(t, bin["fetchcommand"], dir, "Packages", bin["sync-uri"]+"/Packages")
	if idx, _ := os.ReadFile(filepath.Join(dir, "Packages")); !bytes.Contains(idx, []byte("\nVERSION: 0\n")) {
		t.Errorf("Packages from the binhost:\n%s", idx)
	}
	ccPortageRun(t, bin["fetchcommand"], dir, "foo-1.0.tbz2", bin["sync-uri"]+"/All/foo-1.0.tbz2")
	if got, _ := os.ReadFile(filepath.Join(dir, "foo-1.0.tbz2")); !bytes.Equal(got, pkg) {
		t.Error("binhost package: wrong bytes")
	}
}

// The printed repos.conf sync-uri against the real rsync daemon (the rsync
// component serving --tree): stock rsync with Portage's options, the way
// emerge --sync runs it, mirrors the tree.
func TestClientConfigWithLanmirrorRsync(t *testing.T) {
	testutil.RequireTool(t, "rsync")
	tree := t.TempDir()
	os.MkdirAll(filepath.Join(tree, "metadata"), 0o755)
	os.MkdirAll(filepath.Join(tree, "app-misc", "foo"), 0o755)
	stamp := "Tue, 24 Nov 2026 18:00:00 +0000\n"
	os.WriteFile(filepath.Join(tree, "metadata", "timestamp.chk"), []byte(stamp), 0o644)
	ebuild := "EAPI=8\nDESCRIPTION=\"foo\"\nSLOT=\"0\"\n"
	os.WriteFile(filepath.Join(tree, "app-misc", "foo", "foo-1.ebuild"), []byte(ebuild), 0o644)
	os.MkdirAll(filepath.Join(tree, "distfiles"), 0o755)
	os.WriteFile(filepath.Join(tree, "distfiles", "x.tar.gz"), []byte("not served"), 0o644)

	port := freeLoopbackPort(t)
	// The serve settings from the same flags client-config gets.
	args := []string{"--rsync", "127.0.0.1:" + port, "--tree", tree, "--http", "", "--data", t.TempDir()}
	cfg := &config.Serve{}
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	finish := serveFlags(fs, cfg)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	if err := finish(); err != nil {
		t.Fatal(err)
	}
	startComponents(t, cfg, "rsync")

	out, err := ccRun(t, append([]string{"client-config", "--server", "127.0.0.1"}, args...)...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	repo := ccParseINI(t, ccBlocks(t, out)["/etc/portage/repos.conf/gentoo.conf"])["gentoo"]
	if repo["sync-uri"] != "rsync://127.0.0.1:"+port+"/gentoo-portage" {
		t.Fatalf("sync-uri %q", repo["sync-uri"])
	}
	dest := t.TempDir()
	// The timestamp probe, then the sync, as emerge --sync runs them.
	opts := []string{"--recursive", "--links", "--safe-links", "--perms", "--times", "--omit-dir-times", "--compress", "--force", "--whole-file", "--delete", "--stats", "--human-readable", "--timeout=180", "--exclude=/distfiles", "--exclude=/local", "--exclude=/packages", "--exclude=/.git"}
	probe := filepath.Join(t.TempDir(), "timestamp.chk")
	if o, e, err := rsyncCmd(t, append(append([]string{}, opts...), "--inplace", repo["sync-uri"]+"/metadata/timestamp.chk", probe)...); err != nil {
		t.Fatalf("probe: %v\n%s%s", err, o, e)
	}
	if got, _ := os.ReadFile(probe); string(got) != stamp {
		t.Errorf("probe got %q", got)
	}
	if o, e, err := rsyncCmd(t, append(append([]string{}, opts...), repo["sync-uri"]+"/", dest+"/")...); err != nil {
		t.Fatalf("sync: %v\n%s%s", err, o, e)
	}
	if got, _ := os.ReadFile(filepath.Join(dest, "app-misc", "foo", "foo-1.ebuild")); string(got) != ebuild {
		t.Errorf("synced ebuild %q", got)
	}
	if _, err := os.Stat(filepath.Join(dest, "distfiles")); err == nil {
		t.Error("distfiles synced")
	}
}

// --binpkgs with --binhost-upstream: the client's one binrepo lists and
// serves both the local packages and the upstream binhost's.
func TestClientConfigLocalAndUpstreamBinhost(t *testing.T) {
	testutil.RequireTool(t, "wget")
	upPkg := bytes.Repeat([]byte("upstream package "), 1000)
	up := newHTUpstream(t)
	up.put("/bh/Packages", []byte("ARCH: amd64\nCHOST: x86_64-pc-linux-gnu\nPACKAGES: 1\nTIMESTAMP: 1700000000\nVERSION: 0\n\n"+
		"BUILD_ID: 1\nCPV: dev-lang/go-1.26\nPATH: dev-lang/go/go-1.26-1.gpkg.tar\nSIZE: "+strconv.Itoa(len(upPkg))+"\n\n"))
	up.put("/bh/dev-lang/go/go-1.26-1.gpkg.tar", upPkg)

	// A local PKGDIR whose own (fresh) Packages lists its one package.
	local := t.TempDir()
	localPkg := []byte("local package bytes")
	os.MkdirAll(filepath.Join(local, "app-misc"), 0o755)
	p := filepath.Join(local, "app-misc", "mine-1.tbz2")
	os.WriteFile(p, localPkg, 0o644)
	mt := time.Unix(1750000000, 0)
	os.Chtimes(p, mt, mt)
	os.WriteFile(filepath.Join(local, "Packages"), []byte("PACKAGES: 1\nTIMESTAMP: 1750000001\nVERSION: 0\n\n"+
		"CPV: app-misc/mine-1\nMD5: x\nMTIME: 1750000000\nPATH: app-misc/mine-1.tbz2\nSHA1: y\nSIZE: "+strconv.Itoa(len(localPkg))+"\n\n"), 0o644)

	cfg := &config.Serve{Mirrors: []string{"http://127.0.0.1:1/"}, Binpkgs: local, BinhostUpstream: up.ts.URL + "/bh/"}
	startHTTPComponent(t, cfg)
	out, err := ccRun(t, "client-config", "--server", "127.0.0.1", "--http", cfg.HTTPAddr, "--rsync", "", "--binpkgs", local, "--binhost-upstream", cfg.BinhostUpstream)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	bin := ccParseINI(t, ccBlocks(t, out)["/etc/portage/binrepos.conf/lanmirror.conf"])["lanmirror"]
	dir := t.TempDir()
	for range 2 {
		ccPortageRun(t, bin["fetchcommand"], dir, "Packages", bin["sync-uri"]+"/Packages")
	}
	idx, _ := os.ReadFile(filepath.Join(dir, "Packages"))
	for _, want := range []string{"CPV: app-misc/mine-1\n", "CPV: dev-lang/go-1.26\n", "PACKAGES: 2\n", "ARCH: amd64\n"} {
		if !bytes.Contains(idx, []byte(want)) {
			t.Errorf("merged Packages lacks %q:\n%s", want, idx)
		}
	}
	if c := up.count("/bh/Packages"); c != 1 {
		t.Errorf("upstream Packages GETs = %d, want 1 (cached, volatile)", c)
	}
	for path, want := range map[string][]byte{"app-misc/mine-1.tbz2": localPkg, "dev-lang/go/go-1.26-1.gpkg.tar": upPkg} {
		name := filepath.Base(path)
		ccPortageRun(t, bin["fetchcommand"], dir, name, bin["sync-uri"]+"/"+path)
		if got, _ := os.ReadFile(filepath.Join(dir, name)); !bytes.Equal(got, want) {
			t.Errorf("%s: wrong bytes", path)
		}
	}
}
