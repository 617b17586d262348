package daemon

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/config"
	"github.com/lanmirror/lanmirror/internal/metrics"
	"github.com/lanmirror/lanmirror/internal/rsync/sender"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

const rsyncTimeout = 20 * time.Second

func TestModuleListWithStockRsync(t *testing.T) {
	dir := t.TempDir()
	pub := mod("gentoo-portage", dir)
	pub.Comment = "Gentoo ebuild repository"
	hidden := mod("secret", dir)
	hidden.List = false
	hidden.Comment = "must not be listed"
	other := mod("x", dir)
	ts := startServer(t, Config{Modules: []config.Module{pub, hidden, other}})

	res := runRsync(t, rsyncTimeout, "rsync://127.0.0.1:"+ts.port+"/")
	if res.err != nil {
		t.Fatalf("module list failed: %v", res.err)
	}
	want := "gentoo-portage \tGentoo ebuild repository\nx              \t\n"
	if res.stdout != want {
		t.Fatalf("module list:\n got %q\nwant %q", res.stdout, want)
	}
	// Same with an explicit protocol 29 and 27 client.
	for _, p := range []string{"27", "29", "30"} {
		res := runRsync(t, rsyncTimeout, "--protocol="+p, "rsync://127.0.0.1:"+ts.port+"/")
		if res.err != nil || res.stdout != want {
			t.Fatalf("protocol %s module list: %v %q", p, res.err, res.stdout)
		}
	}
}

func TestMOTDShown(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, Config{Modules: []config.Module{mod("m", dir)}, MOTD: "Welcome to ws1\nbe nice"})
	res := runRsync(t, rsyncTimeout, "rsync://127.0.0.1:"+ts.port+"/")
	if res.err != nil {
		t.Fatal(res.err)
	}
	if !strings.HasPrefix(res.stdout, "Welcome to ws1\nbe nice\n") || !strings.Contains(res.stdout, "m              \t\n") {
		t.Fatalf("motd missing from %q", res.stdout)
	}
	// --no-motd hides it, as with rsyncd.
	res = runRsync(t, rsyncTimeout, "--no-motd", "rsync://127.0.0.1:"+ts.port+"/")
	if strings.Contains(res.stdout, "Welcome") {
		t.Fatalf("--no-motd still shows motd: %q", res.stdout)
	}
}

func TestUnknownModule(t *testing.T) {
	ts := startServer(t, Config{Modules: []config.Module{mod("m", t.TempDir())}})
	res := runRsync(t, rsyncTimeout, "-r", "rsync://127.0.0.1:"+ts.port+"/nope/", t.TempDir())
	if res.err == nil || !strings.Contains(res.stderr, "@ERROR: Unknown module 'nope'") {
		t.Fatalf("want unknown module error, got %v %q", res.err, res.stderr)
	}
}

// canBind reports whether this host lets us use addr as a source address.
func canBind(addr string) bool {
	ln, err := net.Listen("tcp", addr+":0")
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

func TestHostsDeny(t *testing.T) {
	if !canBind("127.0.0.2") {
		t.Fatal("127.0.0.2 is not usable on this host's loopback")
	}
	dir := t.TempDir()
	m := mod("m", dir)
	m.HostsDeny = []string{"127.0.0.2"}
	unlisted := mod("u", dir)
	unlisted.List = false
	unlisted.HostsAllow = []string{"127.0.0.1/32"}
	ts := startServer(t, Config{Modules: []config.Module{m, unlisted}})

	res := runRsync(t, rsyncTimeout, "--address=127.0.0.2", "-r", "rsync://127.0.0.1:"+ts.port+"/m/", t.TempDir())
	if res.err == nil || !strings.Contains(res.stderr, "@ERROR: access denied to m from 127.0.0.2 (127.0.0.2)") {
		t.Fatalf("want access denied, got %v %q", res.err, res.stderr)
	}
	// An unlisted module pretends not to exist for a denied client.
	res = runRsync(t, rsyncTimeout, "--address=127.0.0.2", "-r", "rsync://127.0.0.1:"+ts.port+"/u/", t.TempDir())
	if res.err == nil || !strings.Contains(res.stderr, "@ERROR: Unknown module 'u'") {
		t.Fatalf("want unknown module for unlisted denied module, got %v %q", res.err, res.stderr)
	}
	// 127.0.0.1 gets through the access check to "@RSYNCD: OK".
	for _, name := range []string{"m", "u"} {
		c := dialRaw(t, ts.addr)
		c.expectPrefix("@RSYNCD: 31.0")
		c.send("@RSYNCD: 31.0\n" + name + "\n")
		c.expect("@RSYNCD: OK")
	}
}

func TestMaxConnections(t *testing.T) {
	dir := t.TempDir()
	m := mod("m", dir)
	m.MaxConnections = 1
	ts := startServer(t, Config{Modules: []config.Module{m}})

	// A client holds the only slot (module accepted, arguments pending).
	hold := dialRaw(t, ts.addr)
	hold.expectPrefix("@RSYNCD: ")
	hold.send("@RSYNCD: 32.0 sha512 sha256 sha1 md5 md4\nm\n")
	hold.expect("@RSYNCD: OK")

	res := runRsync(t, rsyncTimeout, "-r", "rsync://127.0.0.1:"+ts.port+"/m/", t.TempDir())
	if res.err == nil || !strings.Contains(res.stderr, "@ERROR: max connections (1) reached -- try again later") {
		t.Fatalf("want max connections error, got %v %q", res.err, res.stderr)
	}
	// Module lists are not sessions and still work.
	if res := runRsync(t, rsyncTimeout, "rsync://127.0.0.1:"+ts.port+"/"); res.err != nil {
		t.Fatalf("module list while busy: %v", res.err)
	}
	// Once the holder leaves, the slot is free again.
	hold.conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := dialRaw(t, ts.addr)
		c.expectPrefix("@RSYNCD: ")
		c.send("@RSYNCD: 31.0\nm\n")
		l, err := c.line()
		c.conn.Close()
		if err == nil && l == "@RSYNCD: OK" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not released: %q %v", l, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestUploadRefused(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, Config{Modules: []config.Module{mod("m", dir)}})
	src := t.TempDir()
	writeFile(t, src, "up.txt", "upload attempt\n")
	for _, p := range []string{"", "--protocol=29"} {
		args := []string{"-r", filepath.Join(src, "up.txt"), "rsync://127.0.0.1:" + ts.port + "/m/"}
		if p != "" {
			args = append([]string{p}, args...)
		}
		res := runRsync(t, rsyncTimeout, args...)
		if res.err == nil || !strings.Contains(res.stderr, "module is read only") {
			t.Fatalf("%s: want read-only error, got %v %q", p, res.err, res.stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "up.txt")); !os.IsNotExist(err) {
		t.Fatalf("uploaded file exists: %v", err)
	}
}

func TestEarlyInputAccepted(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "f", "data\n")
	ts := startServer(t, Config{Modules: []config.Module{mod("m", dir)}})
	early := filepath.Join(t.TempDir(), "early")
	writeFile(t, filepath.Dir(early), "early", "some early input\n")
	dst := t.TempDir()
	res := runRsync(t, rsyncTimeout, "--early-input="+early, "-a", "rsync://127.0.0.1:"+ts.port+"/m/", dst+"/")
	if res.err != nil {
		t.Fatalf("--early-input: %v", res.err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "f")); err != nil || string(b) != "data\n" {
		t.Fatalf("got %q %v", b, err)
	}
}

func TestUnsupportedOptionClearError(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a", "a")
	ts := startServer(t, Config{Modules: []config.Module{mod("m", dir)}})
	for _, p := range []string{"--protocol=27", "--protocol=29", "--protocol=30", "--protocol=31"} {
		res := runRsync(t, rsyncTimeout, p, "-rH", "rsync://127.0.0.1:"+ts.port+"/m/", t.TempDir())
		if res.err == nil || !strings.Contains(res.stderr, "option -H is not supported by this server") {
			t.Fatalf("%s: want a clear unsupported-option error, got %v %q", p, res.err, res.stderr)
		}
	}
}

func TestGarbageGreetingThenServesNext(t *testing.T) {
	dir := t.TempDir()
	m := mod("m", dir)
	m.Comment = "still here"
	ts := startServer(t, Config{Modules: []config.Module{m}})
	for _, garbage := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"@RSYNCD: \n",
		"@RSYNCD: 31\n",
		"@RSYNCD: 99999999999.0\n",
		"\x00\x01\x02\xff\n",
		strings.Repeat("A", 70000),
	} {
		c := dialRaw(t, ts.addr)
		c.expectPrefix("@RSYNCD: 31.0 ")
		c.send(garbage)
		got := c.expectPrefix("@ERROR: ")
		if !strings.Contains(got, "protocol startup error") && !strings.Contains(got, "subprotocol") {
			t.Fatalf("%q: error line %q", garbage, got)
		}
		c.expectEOF()
	}
	res := runRsync(t, rsyncTimeout, "rsync://127.0.0.1:"+ts.port+"/")
	if res.err != nil || !strings.Contains(res.stdout, "still here") {
		t.Fatalf("daemon not serving after garbage: %v %q", res.err, res.stdout)
	}
}

func TestOldProtocolRefused(t *testing.T) {
	ts := startServer(t, Config{Modules: []config.Module{mod("m", t.TempDir())}})
	c := dialRaw(t, ts.addr)
	c.expectPrefix("@RSYNCD: ")
	c.send("@RSYNCD: 26\n")
	c.expectPrefix("@ERROR: protocol version mismatch")
	c.expectEOF()
}

func TestUnknownCommandAndOversizedModuleLine(t *testing.T) {
	ts := startServer(t, Config{Modules: []config.Module{mod("m", t.TempDir())}})
	c := dialRaw(t, ts.addr)
	c.expectPrefix("@RSYNCD: ")
	c.send("@RSYNCD: 31.0\n#frobnicate\n")
	c.expect("@ERROR: Unknown command '#frobnicate'")
	c.expectEOF()

	// Early input is read and dropped, then the module line is served.
	c = dialRaw(t, ts.addr)
	c.expectPrefix("@RSYNCD: ")
	c.send("@RSYNCD: 31.0\n#early_input=5\nab\ncdm\n")
	c.expect("@RSYNCD: OK")
	c.conn.Close()

	c = dialRaw(t, ts.addr)
	c.expectPrefix("@RSYNCD: ")
	c.send("@RSYNCD: 31.0\n#early_input=999999\n")
	c.expect("@ERROR: invalid early_input length")
	c.expectEOF()

	c = dialRaw(t, ts.addr)
	c.expectPrefix("@RSYNCD: ")
	c.send("@RSYNCD: 31.0\n" + strings.Repeat("m", 5000) + "\n")
	c.expect("@ERROR: protocol startup error")
	c.expectEOF()
}

func TestBadArgsAfterOK(t *testing.T) {
	ts := startServer(t, Config{Modules: []config.Module{mod("m", t.TempDir())}})
	// Protocol 29: newline-separated args; an oversized one is refused
	// with the error delivered on the multiplexed stream.
	c := dialRaw(t, ts.addr)
	c.expectPrefix("@RSYNCD: ")
	c.send("@RSYNCD: 29.0\nm\n")
	c.expect("@RSYNCD: OK")
	c.send(strings.Repeat("x", 6000) + "\n")
	b := make([]byte, 4)
	if _, err := c.r.Read(b); err != nil { // the zero seed
		t.Fatal(err)
	}
	rest, _ := c.r.ReadString(0xff)
	if !strings.Contains(rest, "argument 1 longer than") {
		t.Fatalf("error not sent: %q", rest)
	}
}

func TestHandshakeTimeout(t *testing.T) {
	ts := startServer(t, Config{Modules: []config.Module{mod("m", t.TempDir())}, HandshakeTimeout: 300 * time.Millisecond})
	c := dialRaw(t, ts.addr)
	c.expectPrefix("@RSYNCD: ")
	start := time.Now()
	c.expectEOF() // we send nothing: the server gives up
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("stalled handshake lasted %v", d)
	}
	// A stalled client holding a slot past the greeting also ends.
	c = dialRaw(t, ts.addr)
	c.expectPrefix("@RSYNCD: ")
	c.send("@RSYNCD: 31.0\nm\n")
	c.expect("@RSYNCD: OK")
	c.send("--server\x00") // then nothing
	_, _ = c.r.ReadString(0xff)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("stalled argument list lasted %v", d)
	}
}

func TestShutdownEndsSessions(t *testing.T) {
	dir := t.TempDir()
	started := make(chan struct{})
	srv, err := New(Config{
		Modules:       []config.Module{mod("m", dir)},
		ShutdownGrace: 100 * time.Millisecond,
		Session: func(ctx context.Context, conn ReadWriteDeadliner, cfg sender.Config) (sender.Stats, error) {
			close(started)
			<-ctx.Done() // a session that only ends when told to
			return sender.Stats{}, ctx.Err()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	c := dialRaw(t, ln.Addr().String())
	c.expectPrefix("@RSYNCD: ")
	c.send("@RSYNCD: 31.0\nm\n")
	c.expect("@RSYNCD: OK")
	c.send("--server\x00--sender\x00-r\x00.\x00m/\x00\x00")
	<-started
	idle := dialRaw(t, ln.Addr().String()) // a second client still in the handshake
	idle.expectPrefix("@RSYNCD: ")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Fatal("listener still accepting after shutdown")
	}
}

func TestSessionConfigFromModule(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "f", "x")
	got := make(chan sender.Config, 1)
	m := mod("m", dir)
	m.Exclude = []string{"/distfiles"}
	m.Timeout = 7 * time.Second
	ts := startServer(t, Config{Modules: []config.Module{m}, Session: func(ctx context.Context, conn ReadWriteDeadliner, cfg sender.Config) (sender.Stats, error) {
		if _, err := cfg.Root.Stat("f"); err != nil {
			return sender.Stats{}, fmt.Errorf("root: %w", err)
		}
		got <- cfg
		return sender.Stats{}, nil
	}})
	c := dialRaw(t, ts.addr)
	c.expectPrefix("@RSYNCD: ")
	c.send("@RSYNCD: 30.0\nm\n")
	c.expect("@RSYNCD: OK")
	c.send("--server\x00--sender\x00-vlWtprze.iLsfxCIvu\x00--timeout=180\x00.\x00m/\x00\x00")
	select {
	case cfg := <-got:
		want := []string{"--server", "--sender", "-vlWtprze.iLsfxCIvu", "--timeout=180", ".", "m/"}
		if cfg.Protocol != 30 || cfg.ModuleName != "m" || strings.Join(cfg.Args, " ") != strings.Join(want, " ") ||
			cfg.Timeout != 7*time.Second || strings.Join(cfg.Excludes, " ") != "/distfiles" ||
			!regexp.MustCompile(`^127\.0\.0\.1:\d+$`).MatchString(cfg.ClientInfo) {
			t.Fatalf("session config: %+v", cfg)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("session not started")
	}
}

// compareTrees checks that dst holds exactly the regular files, dirs and
// symlinks of src (minus skip), with equal contents, modes and mtimes.
func compareTrees(t *testing.T, src, dst string, skip func(rel string) bool) {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel != "." && skip != nil && skip(filepath.ToSlash(rel)) {
			if fi.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		seen[rel] = true
		di, err := os.Lstat(filepath.Join(dst, rel))
		if err != nil {
			t.Errorf("missing in destination: %s", rel)
			return nil
		}
		if di.Mode() != fi.Mode() {
			t.Errorf("%s: mode %v, want %v", rel, di.Mode(), fi.Mode())
		}
		switch {
		case fi.Mode().IsRegular():
			a, _ := os.ReadFile(p)
			b, _ := os.ReadFile(filepath.Join(dst, rel))
			if string(a) != string(b) {
				t.Errorf("%s: content differs", rel)
			}
			if !di.ModTime().Equal(fi.ModTime().Truncate(time.Second)) && !di.ModTime().Equal(fi.ModTime()) {
				t.Errorf("%s: mtime %v, want %v", rel, di.ModTime(), fi.ModTime())
			}
		case fi.Mode()&os.ModeSymlink != 0:
			a, _ := os.Readlink(p)
			b, _ := os.Readlink(filepath.Join(dst, rel))
			if a != b {
				t.Errorf("%s: link %q, want %q", rel, b, a)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = filepath.Walk(dst, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dst, p)
		if !seen[rel] {
			t.Errorf("unexpected in destination: %s", rel)
		}
		return nil
	})
}

// portageTree builds a small ebuild-tree-like module with the paths
// Portage excludes.
func portageTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, dir, "metadata/timestamp.chk", "Tue, 24 Nov 2026 18:00:00 +0000\n")
	writeFile(t, dir, "app-misc/hello/hello-1.ebuild", "EAPI=8\n")
	writeFile(t, dir, "app-misc/hello/Manifest", "DIST hello-1.tar.gz 5 BLAKE2B 00 SHA512 00\n")
	writeFile(t, dir, "app-misc/with space/ünïcode file", "utf-8 name\n")
	writeFile(t, dir, "distfiles/hello-1.tar.gz", "SECRET distfile\n")
	writeFile(t, dir, "packages/All/x.gpkg.tar", "binpkg\n")
	writeFile(t, dir, "empty", "")
	if err := os.Symlink("app-misc/hello", filepath.Join(dir, "hello-link")); err != nil {
		t.Fatal(err)
	}
	mt := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			_ = os.Chtimes(p, mt, mt)
		}
		return err
	})
	return dir
}

func excludedTop(rel string) bool {
	return rel == "distfiles" || strings.HasPrefix(rel, "distfiles/") || rel == "packages" || strings.HasPrefix(rel, "packages/")
}

func TestExcludedPathsInvisible(t *testing.T) {
	dir := portageTree(t)
	m := mod("gentoo-portage", dir)
	m.Exclude = []string{"/distfiles", "/packages"}
	ts := startServer(t, Config{Modules: []config.Module{m}})
	url := "rsync://127.0.0.1:" + ts.port + "/gentoo-portage/"

	// A full mirror with no client excludes lacks the excluded trees.
	for _, p := range []string{"--protocol=27", "--protocol=31"} {
		dst := t.TempDir()
		res := runRsync(t, rsyncTimeout, p, "-a", url, dst+"/")
		if res.err != nil {
			t.Fatalf("%s: sync failed: %v", p, res.err)
		}
		compareTrees(t, dir, dst, excludedTop)
	}
	// The listing does not show them.
	res := runRsync(t, rsyncTimeout, url)
	if res.err != nil || strings.Contains(res.stdout, "distfiles") || strings.Contains(res.stdout, "packages") ||
		!strings.Contains(res.stdout, "metadata") {
		t.Fatalf("listing: %v %q", res.err, res.stdout)
	}
	// Asking for them directly gets nothing.
	for _, path := range []string{"distfiles/hello-1.tar.gz", "distfiles/", "distfiles", "packages/All/x.gpkg.tar", "./distfiles/hello-1.tar.gz", "app-misc/../distfiles/hello-1.tar.gz"} {
		dst := t.TempDir()
		res := runRsync(t, rsyncTimeout, "-r", url+path, dst+"/")
		if res.err == nil {
			t.Errorf("%s: fetch of an excluded path succeeded", path)
		}
		entries, _ := os.ReadDir(dst)
		for _, e := range entries {
			t.Errorf("%s: excluded content fetched: %s", path, e.Name())
		}
	}
}

func TestTransferWithPortageOptionsAndProbe(t *testing.T) {
	dir := portageTree(t)
	m := mod("gentoo-portage", dir)
	m.Exclude = []string{"/distfiles", "/packages"}
	m.Comment = "Gentoo"
	ts := startServer(t, Config{Modules: []config.Module{m}})
	url := "rsync://127.0.0.1:" + ts.port + "/gentoo-portage/"
	portage := []string{"--recursive", "--links", "--safe-links", "--perms", "--times", "--omit-dir-times",
		"--force", "--whole-file", "--delete", "--stats", "--human-readable", "--timeout=180",
		"--exclude=/distfiles", "--exclude=/local", "--exclude=/packages", "--exclude=/.git"}
	// The timestamp probe emerge --sync runs first.
	probe := t.TempDir()
	res := runRsync(t, rsyncTimeout, append(append([]string{}, portage...), "--inplace", url+"metadata/timestamp.chk", probe+"/")...)
	if res.err != nil {
		t.Fatalf("probe: %v", res.err)
	}
	if b, err := os.ReadFile(filepath.Join(probe, "timestamp.chk")); err != nil || !strings.HasPrefix(string(b), "Tue, 24 Nov 2026") {
		t.Fatalf("probe result: %q %v", b, err)
	}
	dst := t.TempDir()
	res = runRsync(t, rsyncTimeout, append(append([]string{}, portage...), url, dst+"/")...)
	if res.err != nil {
		t.Fatalf("sync: %v", res.err)
	}
	compareTrees(t, dir, dst, excludedTop)
	// A re-sync transfers no file data.
	res = runRsync(t, rsyncTimeout, append(append([]string{}, portage...), url, dst+"/")...)
	if res.err != nil || !strings.Contains(res.stdout, "Number of regular files transferred: 0") {
		t.Fatalf("no-op sync: %v %q", res.err, res.stdout)
	}
}

func TestHostsDenyServesOthers(t *testing.T) {
	dir := portageTree(t)
	m := mod("m", dir)
	m.HostsDeny = []string{"127.0.0.2"}
	m.Exclude = []string{"/distfiles", "/packages"}
	ts := startServer(t, Config{Modules: []config.Module{m}})
	dst := t.TempDir()
	res := runRsync(t, rsyncTimeout, "--address=127.0.0.1", "-a", "rsync://127.0.0.1:"+ts.port+"/m/", dst+"/")
	if res.err != nil {
		t.Fatalf("allowed client refused: %v", res.err)
	}
	compareTrees(t, dir, dst, excludedTop)
}

func TestFetchPathWithSpaces(t *testing.T) {
	dir := portageTree(t)
	ts := startServer(t, Config{Modules: []config.Module{mod("m", dir)}})
	dst := t.TempDir()
	res := runRsync(t, rsyncTimeout, "-a", "rsync://127.0.0.1:"+ts.port+"/m/app-misc/with space/ünïcode file", dst+"/")
	if res.err != nil {
		t.Fatalf("fetch: %v", res.err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "ünïcode file")); err != nil || string(b) != "utf-8 name\n" {
		t.Fatalf("got %q %v", b, err)
	}
}

func TestMaxClientsOverall(t *testing.T) {
	ts := startServer(t, Config{Modules: []config.Module{mod("m", t.TempDir())}, MaxClients: 1})
	hold := dialRaw(t, ts.addr)
	hold.expectPrefix("@RSYNCD: 31.0")
	res := runRsync(t, rsyncTimeout, "rsync://127.0.0.1:"+ts.port+"/")
	if res.err == nil || !strings.Contains(res.stderr, "@ERROR: max connections (1) reached -- try again later") {
		t.Fatalf("want overall limit error, got %v %q", res.err, res.stderr)
	}
	hold.conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		res := runRsync(t, rsyncTimeout, "rsync://127.0.0.1:"+ts.port+"/")
		if res.err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("slot not freed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	e, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(e)
}

func TestNoLeaksAfterBadAndGoodClients(t *testing.T) {
	dir := portageTree(t)
	m := mod("m", dir)
	m.HostsDeny = []string{"127.0.0.2"}
	m.Exclude = []string{"/distfiles", "/packages"}
	ts := startServer(t, Config{Modules: []config.Module{m}, HandshakeTimeout: 2 * time.Second})
	// Warm up: the first session opens the module tree (kept open).
	if res := runRsync(t, rsyncTimeout, "-a", "rsync://127.0.0.1:"+ts.port+"/m/", t.TempDir()+"/"); res.err != nil {
		t.Fatal(res.err)
	}
	time.Sleep(100 * time.Millisecond)
	fds, gs := openFDs(t), runtime.NumGoroutine()
	for i := 0; i < 20; i++ {
		c := dialRaw(t, ts.addr)
		c.expectPrefix("@RSYNCD: ")
		switch i % 5 {
		case 0:
			c.send("garbage\n")
		case 1:
			c.send("@RSYNCD: 31.0\nnope\n")
		case 2:
			c.send("@RSYNCD: 31.0\nm\n--server\x00--sender\x00-Hr\x00.\x00m/\x00\x00")
		case 3:
			c.send("@RSYNCD: 31.0\nm\n--server\x00--sender\x00-r") // then vanish
		case 4:
			c.send("@RSYNCD: 30.0\nm\n--server\x00--sender\x00-re.iLsfxCIvu\x00.\x00m/\x00\x00\xff\xff\xff\xff")
		}
		c.conn.Close()
	}
	if res := runRsync(t, rsyncTimeout, "-a", "rsync://127.0.0.1:"+ts.port+"/m/", t.TempDir()+"/"); res.err != nil {
		t.Fatal(res.err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		f, g := openFDs(t), runtime.NumGoroutine()
		if f <= fds && g <= gs {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("leak: fds %d -> %d, goroutines %d -> %d\n%s", fds, f, gs, g, buf[:n])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSnapshotSwitchServedToClients(t *testing.T) {
	base := t.TempDir()
	a, b := filepath.Join(base, "snapshots", "a"), filepath.Join(base, "snapshots", "b")
	writeFile(t, a, "metadata/timestamp.chk", "A\n")
	writeFile(t, a, "only-in-a", "a\n")
	writeFile(t, b, "metadata/timestamp.chk", "B\n")
	writeFile(t, b, "only-in-b", "b\n")
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(b, "metadata/timestamp.chk"), later, later); err != nil {
		t.Fatal(err)
	}
	cur := filepath.Join(base, "current")
	if err := os.Symlink("snapshots/a", cur); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, Config{Modules: []config.Module{mod("gentoo-portage", cur)}})
	url := "rsync://127.0.0.1:" + ts.port + "/gentoo-portage/"
	dst := t.TempDir()
	if res := runRsync(t, rsyncTimeout, "-a", "--delete", url, dst+"/"); res.err != nil {
		t.Fatal(res.err)
	}
	compareTrees(t, a, dst, nil)
	tmp := filepath.Join(base, "current.new")
	if err := os.Symlink("snapshots/b", tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, cur); err != nil {
		t.Fatal(err)
	}
	if res := runRsync(t, rsyncTimeout, "-a", "--delete", url, dst+"/"); res.err != nil {
		t.Fatal(res.err)
	}
	compareTrees(t, b, dst, nil)
}

func TestSessionMetrics(t *testing.T) {
	dir := portageTree(t)
	m := mod("metrics-mod", dir)
	m.HostsDeny = []string{"127.0.0.2"}
	ts := startServer(t, Config{Modules: []config.Module{m}})
	ok := metricValue(t, metrics.RsyncSessions.WithLabelValues("metrics-mod", "ok"))
	denied := metricValue(t, metrics.RsyncSessions.WithLabelValues("metrics-mod", "denied"))
	sent := metricValue(t, metrics.RsyncBytes)
	if res := runRsync(t, rsyncTimeout, "-a", "rsync://127.0.0.1:"+ts.port+"/metrics-mod/", t.TempDir()+"/"); res.err != nil {
		t.Fatal(res.err)
	}
	if res := runRsync(t, rsyncTimeout, "--address=127.0.0.2", "-a", "rsync://127.0.0.1:"+ts.port+"/metrics-mod/", t.TempDir()+"/"); res.err == nil {
		t.Fatal("denied client served")
	}
	deadline := time.Now().Add(5 * time.Second)
	for (metricValue(t, metrics.RsyncSessions.WithLabelValues("metrics-mod", "ok")) != ok+1 ||
		metricValue(t, metrics.RsyncActive.WithLabelValues("metrics-mod")) != 0) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := metricValue(t, metrics.RsyncSessions.WithLabelValues("metrics-mod", "ok")); got != ok+1 {
		t.Errorf("ok sessions %v, want %v", got, ok+1)
	}
	if got := metricValue(t, metrics.RsyncSessions.WithLabelValues("metrics-mod", "denied")); got != denied+1 {
		t.Errorf("denied sessions %v, want %v", got, denied+1)
	}
	if got := metricValue(t, metrics.RsyncBytes); got <= sent {
		t.Errorf("sent bytes did not grow: %v", got)
	}
	if got := metricValue(t, metrics.RsyncActive.WithLabelValues("metrics-mod")); got != 0 {
		t.Errorf("active sessions %v after all ended", got)
	}
}

// metricValue reads a counter or gauge.
func metricValue(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	switch {
	case d.Counter != nil:
		return d.Counter.GetValue()
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	}
	t.Fatal("not a counter or gauge")
	return 0
}

func TestConcurrentClientsShareModule(t *testing.T) {
	dir := portageTree(t)
	for i := 0; i < 200; i++ {
		writeFile(t, dir, fmt.Sprintf("cat-%d/pkg/pkg-%d.ebuild", i%10, i), strings.Repeat("x", i*7))
	}
	m := mod("gentoo-portage", dir)
	m.Exclude = []string{"/distfiles", "/packages"}
	ts := startServer(t, Config{Modules: []config.Module{m}})
	const n = 6
	dsts := make([]string, n)
	errs := make(chan error, n)
	for i := range n {
		dsts[i] = t.TempDir()
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, "rsync", "-a", "rsync://127.0.0.1:"+ts.port+"/gentoo-portage/", dsts[i]+"/").CombinedOutput()
			if err != nil {
				err = fmt.Errorf("client %d: %v: %s", i, err, out)
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	for _, d := range dsts {
		compareTrees(t, dir, d, excludedTop)
	}
}

func TestHostsDenyIPv6(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback on this host:", err)
	}
	m := mod("m", t.TempDir())
	m.HostsDeny = []string{"::1/128"}
	m.HostsAllow = []string{"10.0.0.0/8"}
	srv, err := New(Config{Modules: []config.Module{m}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	defer func() {
		cancel()
		<-done
	}()
	c := dialRaw(t, ln.Addr().String())
	c.expectPrefix("@RSYNCD: ")
	c.send("@RSYNCD: 31.0\nm\n")
	c.expect("@ERROR: access denied to m from ::1 (::1)")
	c.expectEOF()
}

func TestSymlinksCannotEscapeModule(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	writeFile(t, outside, "secret", "outside the module\n")
	dir := filepath.Join(base, "module")
	writeFile(t, dir, "inside", "ok\n")
	if err := os.Symlink("../outside", filepath.Join(dir, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dir, "abs-escape")); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, Config{Modules: []config.Module{mod("m", dir)}})
	url := "rsync://127.0.0.1:" + ts.port + "/m/"
	for _, args := range [][]string{
		{"-a", url + "escape/secret"},
		{"-a", url + "escape/"},
		{"-aL", url + "abs-escape"},
		{"-aL", url},
		{"-a", "--copy-unsafe-links", url},
	} {
		dst := t.TempDir()
		runRsync(t, rsyncTimeout, append(args, dst+"/")...)
		_ = filepath.Walk(dst, func(p string, fi os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			if fi.Mode().IsRegular() {
				if b, _ := os.ReadFile(p); strings.Contains(string(b), "outside the module") {
					t.Errorf("%v: file from outside the module delivered as %s", args, p)
				}
			}
			return nil
		})
	}
}
