package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/config"
	"github.com/lanmirror/lanmirror/internal/testutil"
)

// buildRsyncTestBinary builds lanmirror into dir.
func buildRsyncTestBinary(t *testing.T, dir string) string {
	t.Helper()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	bin := filepath.Join(dir, "lanmirror")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, goBin, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// freeLoopbackPort returns a port that was free on 127.0.0.1 a moment ago.
func freeLoopbackPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// startServeBinary runs `bin serve --allow-root args...` and waits until
// addr accepts connections. The process is stopped (by its PID) when the
// test ends.
func startServeBinary(t *testing.T, bin, addr string, args ...string) *lmProc {
	t.Helper()
	return startProc(t, bin, addr, append([]string{"serve", "--allow-root"}, args...)...)
}

// rsyncCmd runs the stock rsync client with a deadline.
func rsyncCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "rsync", args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	cmd.WaitDelay = time.Second
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("rsync %v timed out", args)
	}
	return o.String(), e.String(), err
}

// writeTestFile creates a file with its directories.
func writeTestFile(t *testing.T, dir, rel, content string, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

// worldReadableDir makes a temporary directory that other users (the
// uid the daemon may switch to) can read, removed when the test ends.
func worldReadableDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "lanmirror-rsync-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestServeRsyncBinary runs the built binary: `lanmirror serve --http ”
// --rsyncd-conf FILE` against the stock rsync client.
func TestServeRsyncBinary(t *testing.T) {
	testutil.RequireTool(t, "rsync")
	bin := buildRsyncTestBinary(t, worldReadableDir(t))
	t.Run("EndToEnd", func(t *testing.T) { serveRsyncEndToEnd(t, bin) })
	t.Run("DropsPrivileges", func(t *testing.T) { serveRsyncDropsPrivileges(t, bin) })
	t.Run("TreeFlag", func(t *testing.T) { serveRsyncTreeFlag(t, bin) })
}

// serveRsyncTreeFlag: `serve --tree DIR` alone serves DIR as gentoo-portage
// with Portage's server-side excludes, following a switched symlink.
func serveRsyncTreeFlag(t *testing.T, bin string) {
	work := worldReadableDir(t)
	writeTestFile(t, work, "snap-1/metadata/timestamp.chk", "one\n", 0o644)
	writeTestFile(t, work, "snap-1/distfiles/big.tar.gz", "cached distfile\n", 0o644)
	writeTestFile(t, work, "snap-2/metadata/timestamp.chk", "two, later\n", 0o644)
	cur := filepath.Join(work, "current")
	if err := os.Symlink("snap-1", cur); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + freeLoopbackPort(t)
	p := startServeBinary(t, bin, addr, "--http", "", "--rsync", addr, "--data", filepath.Join(work, "data"), "--tree", cur)
	out, _, err := rsyncCmd(t, "rsync://"+addr+"/")
	if err != nil || out != "gentoo-portage \tGentoo ebuild repository\n" {
		t.Fatalf("module list: %v %q", err, out)
	}
	dst := filepath.Join(work, "dst")
	if _, errs, err := rsyncCmd(t, "-a", "rsync://"+addr+"/gentoo-portage/", dst+"/"); err != nil {
		t.Fatalf("sync: %v %s", err, errs)
	}
	if _, err := os.Stat(filepath.Join(dst, "distfiles")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("distfiles served from --tree: %v", err)
	}
	tmp := filepath.Join(work, "current.tmp")
	if err := os.Symlink("snap-2", tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, cur); err != nil {
		t.Fatal(err)
	}
	if _, errs, err := rsyncCmd(t, "-a", "rsync://"+addr+"/gentoo-portage/metadata/timestamp.chk", dst+"/probe.chk"); err != nil {
		t.Fatalf("probe: %v %s", err, errs)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "probe.chk")); err != nil || string(b) != "two, later\n" {
		t.Fatalf("after the switch: %q %v", b, err)
	}
	p.stop(t)
}

func serveRsyncEndToEnd(t *testing.T, bin string) {
	work := worldReadableDir(t)
	tree := filepath.Join(work, "tree")
	writeTestFile(t, tree, "metadata/timestamp.chk", "Tue, 24 Nov 2026 18:00:00 +0000\n", 0o644)
	writeTestFile(t, tree, "app-misc/hello/hello-1.ebuild", "EAPI=8\n", 0o644)
	writeTestFile(t, tree, "distfiles/secret.tar.gz", "not for clients\n", 0o644)
	if err := os.Chmod(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	port := freeLoopbackPort(t)
	addr := "127.0.0.1:" + port
	motd := filepath.Join(work, "motd")
	writeTestFile(t, work, "motd", "Welcome to ws1 (lanmirror)\n", 0o644)
	pid := filepath.Join(work, "lanmirror.pid")
	conf := filepath.Join(work, "rsyncd.conf")
	writeTestFile(t, work, "rsyncd.conf", fmt.Sprintf(`# lanmirror end-to-end test
address = 127.0.0.1
port = %s
motd file = %s
pid file = %s
max connections = 5
use chroot = yes
read only = yes
hosts deny = 127.0.0.2
log file = /dev/null

[gentoo-portage]
path = %s
comment = Gentoo Portage tree
exclude = /distfiles /packages

[hidden]
path = %s
list = no
`, port, motd, pid, tree, tree), 0o644)

	// No --rsync flag: address and port come from the conf.
	p := startServeBinary(t, bin, addr, "--http", "", "--data", filepath.Join(work, "data"), "--rsyncd-conf", conf)
	p.waitLog(t, "lanmirror serving")

	if b, err := os.ReadFile(pid); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(p.cmd.Process.Pid) {
		t.Fatalf("pid file: %q %v (pid %d)", b, err, p.cmd.Process.Pid)
	}
	out, errs, err := rsyncCmd(t, "rsync://"+addr+"/")
	if err != nil || out != "Welcome to ws1 (lanmirror)\n\ngentoo-portage \tGentoo Portage tree\n" {
		t.Fatalf("module list: %v %q %q", err, out, errs)
	}
	_, errs, err = rsyncCmd(t, "-r", "rsync://"+addr+"/nope/", filepath.Join(work, "x"))
	if err == nil || !strings.Contains(errs, "@ERROR: Unknown module 'nope'") {
		t.Fatalf("unknown module: %v %q", err, errs)
	}
	_, errs, err = rsyncCmd(t, "--address=127.0.0.2", "-r", "rsync://"+addr+"/gentoo-portage/", filepath.Join(work, "x"))
	if err == nil || !strings.Contains(errs, "@ERROR: access denied to gentoo-portage from 127.0.0.2 (127.0.0.2)") {
		t.Fatalf("hosts deny: %v %q", err, errs)
	}
	dst := filepath.Join(work, "dst")
	_, errs, err = rsyncCmd(t, "-a", "rsync://"+addr+"/gentoo-portage/", dst+"/")
	if err != nil {
		t.Fatalf("sync: %v %q", err, errs)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "app-misc/hello/hello-1.ebuild")); err != nil || string(b) != "EAPI=8\n" {
		t.Fatalf("synced file: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dst, "distfiles")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("excluded distfiles reached the client: %v", err)
	}
	p.stop(t)
	if _, err := os.Stat(pid); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pid file left after stop: %v", err)
	}
	if logs := p.out.String(); !strings.Contains(logs, `log file`) || !strings.Contains(logs, "not supported by lanmirror") {
		t.Fatalf("unsupported parameter warning not logged:\n%s", logs)
	}
}

func serveRsyncDropsPrivileges(t *testing.T, bin string) {
	work := worldReadableDir(t)
	tree := filepath.Join(work, "tree")
	writeTestFile(t, tree, "f", "readable by everyone\n", 0o644)
	if err := os.Chmod(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	port := freeLoopbackPort(t)
	addr := "127.0.0.1:" + port
	writeTestFile(t, work, "rsyncd.conf", fmt.Sprintf("uid = nobody\ngid = nobody\n[m]\npath = %s\n", tree), 0o644)
	p := startServeBinary(t, bin, addr, "--http", "", "--rsync", addr, "--data", filepath.Join(work, "data"),
		"--rsyncd-conf", filepath.Join(work, "rsyncd.conf"))
	p.waitLog(t, "lanmirror serving") // logged once privileges are dropped
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	uidLine := ""
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "Uid:") {
			uidLine = strings.Join(strings.Fields(l)[1:], " ")
		}
	}
	if os.Geteuid() == 0 {
		id, err := lookupIdentity("nobody", "nobody")
		if err != nil {
			t.Fatal(err)
		}
		n := strconv.Itoa(id.uid)
		if uidLine != strings.Join([]string{n, n, n, n}, " ") {
			t.Fatalf("running as root with uid = nobody: process uids %q, want all %s\n%s", uidLine, n, p.out.String())
		}
		if !strings.Contains(p.out.String(), "dropped privileges") {
			t.Fatalf("privilege drop not logged:\n%s", p.out.String())
		}
	} else {
		if !strings.Contains(p.out.String(), "not running as root") {
			t.Fatalf("non-root run with uid set: no warning\n%s", p.out.String())
		}
	}
	if os.Geteuid() == 0 {
		// With the HTTP side on, a --data the new user cannot write is a
		// clear startup error, not a cache that fails later.
		data := worldReadableDir(t) // root-owned, 0755
		port2 := freeLoopbackPort(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, "serve", "--http", "127.0.0.1:"+freeLoopbackPort(t), "--rsync", "127.0.0.1:"+port2,
			"--data", data, "--rsyncd-conf", filepath.Join(work, "rsyncd.conf")).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "is not writable") {
			t.Fatalf("unwritable --data after dropping privileges: %v\n%s", err, out)
		}
	}
	// Either way the module is served.
	dst := filepath.Join(work, "dst")
	if _, errs, err := rsyncCmd(t, "-a", "rsync://"+addr+"/m/", dst+"/"); err != nil {
		t.Fatalf("sync after privilege change: %v %s\n%s", err, errs, p.out.String())
	}
	if b, err := os.ReadFile(filepath.Join(dst, "f")); err != nil || string(b) != "readable by everyone\n" {
		t.Fatalf("synced: %q %v", b, err)
	}
	p.stop(t)
}

func TestLoadRsyncSetupFlagsWin(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "rsyncd.conf")
	writeTestFile(t, conf[:len(conf)-len("/rsyncd.conf")], "rsyncd.conf",
		"address = 127.0.0.9\nport = 8873\n[a]\npath = "+dir+"\ncomment = from conf\n[b]\npath = "+dir+"\n", 0o644)
	cfg := config.Defaults()
	cfg.RsyncdConf = conf
	cfg.RsyncModules = []config.Module{{Name: "a", Path: dir, Comment: "from flag", List: true, ReadOnly: true}}
	s, err := loadRsyncSetup(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.addr != "127.0.0.9:8873" {
		t.Fatalf("conf address/port not applied with the default --rsync: %q", s.addr)
	}
	if len(s.modules) != 2 || s.modules[0].Comment != "from flag" || s.modules[1].Name != "b" {
		t.Fatalf("modules: %+v", s.modules)
	}
	cfg.RsyncAddr = "127.0.0.1:9999"
	if s, err = loadRsyncSetup(&cfg); err != nil || s.addr != "127.0.0.1:9999" {
		t.Fatalf("--rsync must win: %v %q", err, s.addr)
	}
	cfg.RsyncdConf, cfg.RsyncModules = "", nil
	if _, err := loadRsyncSetup(&cfg); err == nil {
		t.Fatal("no modules accepted")
	}
}

func TestRsyncIdentityMustAgree(t *testing.T) {
	mods := []config.Module{{Name: "a", UID: "nobody", GID: "nobody"}, {Name: "b"}, {Name: "c", UID: "nobody", GID: "nobody"}}
	uid, gid, ok, err := rsyncIdentity(mods)
	if err != nil || !ok || uid != "nobody" || gid != "nobody" {
		t.Fatalf("%q %q %v %v", uid, gid, ok, err)
	}
	mods[2].UID = "root"
	if _, _, _, err := rsyncIdentity(mods); err == nil || !strings.Contains(err.Error(), "one user") {
		t.Fatalf("differing uid accepted: %v", err)
	}
	if _, _, ok, err := rsyncIdentity([]config.Module{{Name: "x"}}); ok || err != nil {
		t.Fatal("no uid must mean no switch")
	}
	if _, err := lookupIdentity("no-such-user-lanmirror", ""); err == nil {
		t.Fatal("unknown user accepted")
	}
	id, err := lookupIdentity("0", "0, 0")
	if err != nil || id.uid != 0 || len(id.gids) != 2 {
		t.Fatalf("numeric ids: %+v %v", id, err)
	}
}

// runCheckConfig runs `lanmirror check-config args...` in-process.
func runCheckConfig(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append([]string{"check-config"}, args...))
	err := root.Execute()
	return out.String(), err
}

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "rsyncd.conf")
	writeTestFile(t, dir, "rsyncd.conf", `max connections = 5
use chroot = yes
read only = yes
uid = nobody
gid = nobody
hosts allow = 10.13.18.0/24
hosts deny  = *
[niden-gentoo-portage]
path = `+dir+`
comment = niden.net Gentoo Portage tree
exclude = /distfiles /packages
frobnicate = yes
`, 0o644)
	out, err := runCheckConfig(t, "--rsyncd-conf", conf, "--http", "")
	if err != nil {
		t.Fatalf("check-config: %v\n%s", err, out)
	}
	for _, want := range []string{
		"module niden-gentoo-portage\n",
		"  path        " + dir + "\n",
		"  comment     niden.net Gentoo Portage tree\n",
		"  exclude     /distfiles /packages\n",
		"  hosts allow 10.13.18.0/24\n",
		"  hosts deny  *\n",
		"  max conn    5\n",
		"warning: " + conf + `:12: unknown parameter "frobnicate" ignored` + "\n",
		"configuration OK\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	writeTestFile(t, dir, "bad.conf", "[m]\npath = "+dir+"\nread only = no\n", 0o644)
	out, err = runCheckConfig(t, "--rsyncd-conf", filepath.Join(dir, "bad.conf"))
	if err == nil || !strings.Contains(out, "read only = no is not supported") {
		t.Fatalf("bad conf: %v\n%s", err, out)
	}
	out, err = runCheckConfig(t, "--rsync-module", "quick="+dir, "--mirror", "ftp:/nohost")
	if err == nil || !strings.Contains(out, `error: --mirror "ftp:/nohost"`) {
		t.Fatalf("bad mirror: %v\n%s", err, out)
	}
	out, err = runCheckConfig(t, "--rsync-module", "quick="+dir, "--http", "")
	if err != nil || !strings.Contains(out, "module quick\n") {
		t.Fatalf("--rsync-module: %v\n%s", err, out)
	}
}

// The per-client limit comes from --max-conns-per-client, else from the
// rsyncd.conf's "max connections per client".
func TestLoadRsyncSetupPerClient(t *testing.T) {
	dir := t.TempDir()
	writeTestFile(t, dir, "rsyncd.conf", "max connections per client = 3\n[a]\npath = "+dir+"\n", 0o644)
	cfg := config.Defaults()
	cfg.RsyncdConf = filepath.Join(dir, "rsyncd.conf")
	s, err := loadRsyncSetup(&cfg)
	if err != nil || s.perClient != 3 {
		t.Fatalf("from the conf: %v %d, want 3", err, s.perClient)
	}
	cfg.MaxConnsPerClient = 7
	if s, err = loadRsyncSetup(&cfg); err != nil || s.perClient != 7 {
		t.Fatalf("the flag must win: %v %d, want 7", err, s.perClient)
	}
}
