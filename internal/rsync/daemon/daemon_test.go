package daemon

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/config"
	"github.com/lanmirror/lanmirror/internal/rsync/sender"
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
	c.send("@RSYNCD: 31.0\n#early_input=5\n")
	c.expect("@ERROR: Unknown command '#early_input=5'")
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
