package interop

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// wantRefused checks a client run that the daemon must refuse: a non-zero
// exit status, and msg in its error output.
func wantRefused(t *testing.T, r *rsyncResult, code int, msg string) {
	t.Helper()
	if r.code == 0 || (code != 0 && r.code != code) {
		t.Errorf("want exit status %d, got:\n%s", code, r)
	}
	if !strings.Contains(r.stderr+r.stdout, msg) {
		t.Errorf("want %q in the output, got:\n%s", msg, r)
	}
}

// TestHostsDeny: a module that denies 127.0.0.2 refuses a client bound to
// that address with rsyncd's message, and serves 127.0.0.1; a module that
// allows only 127.0.0.1 (the issue's "hosts allow = NET, hosts deny = *"
// form) does the same.
func TestHostsDeny(t *testing.T) {
	forEachServer(t, func(t *testing.T, kind serverKind) {
		src := newTree(t, 61, 50)
		srv := startServer(t, kind, serverConf{modules: []module{
			{name: "denied", path: src, hostsDeny: []string{"127.0.0.2"}},
			{name: "allowlist", path: src, hostsAllow: []string{"127.0.0.1/32"}, hostsDeny: []string{"*"}},
		}})
		for _, mod := range []string{"denied", "allowlist"} {
			t.Run(mod, func(t *testing.T) {
				r := rsyncCmd(t, "--address=127.0.0.2", "-r", srv.url(mod+"/"), filepath.Join(t.TempDir(), "dst"))
				wantRefused(t, r, 5, "@ERROR: access denied to "+mod+" from ")
				if !strings.Contains(r.stderr, "127.0.0.2") {
					t.Errorf("the refusal does not name the client address:\n%s", r)
				}
				dst := filepath.Join(t.TempDir(), "ok")
				mustRsync(t, "--address=127.0.0.1", "-rlpt", srv.url(mod+"/"), dst+"/")
				compareTrees(t, src, dst, archiveCmp(0))
			})
		}
	})
}

// holdSession opens a raw daemon connection and selects mod, taking one of
// its connection slots until the returned connection is closed.
func holdSession(t *testing.T, srv *server, mod string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", srv.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	greet, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(greet, "@RSYNCD: ") {
		c.Close()
		t.Fatalf("greeting %q: %v", greet, err)
	}
	if _, err := fmt.Fprintf(c, "@RSYNCD: 31.0 md5 md4\n%s\n", mod); err != nil {
		c.Close()
		t.Fatal(err)
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			c.Close()
			t.Fatalf("holding a session on %s: %v (last line %q)", mod, err, line)
		}
		if strings.HasPrefix(line, "@RSYNCD: OK") {
			break
		}
		if strings.HasPrefix(line, "@ERROR") {
			c.Close()
			t.Fatalf("holding a session on %s: %s", mod, line)
		}
	}
	c.SetDeadline(time.Time{})
	return c
}

// TestMaxConnections: with "max connections = 1" and one session open, the
// next client gets rsyncd's exact message; once the session ends, clients
// are served again.
func TestMaxConnections(t *testing.T) {
	forEachServer(t, func(t *testing.T, kind serverKind) {
		src := newTree(t, 62, 50)
		srv := startServer(t, kind, serverConf{modules: []module{
			{name: "one", path: src, maxConnections: 1},
			{name: "free", path: src},
		}})
		hold := holdSession(t, srv, "one")
		r := rsyncCmd(t, "-r", srv.url("one/"), filepath.Join(t.TempDir(), "dst"))
		wantRefused(t, r, 5, "@ERROR: max connections (1) reached -- try again later")
		// Other modules are not affected.
		mustRsync(t, "-rlpt", srv.url("free/"), filepath.Join(t.TempDir(), "free")+"/")
		hold.Close()
		// The slot comes back once the server notices the end of the
		// session (bounded wait).
		dst := filepath.Join(t.TempDir(), "again")
		deadline := time.Now().Add(10 * time.Second)
		for {
			r = rsyncCmd(t, "-rlpt", srv.url("one/"), dst+"/")
			if r.code == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if r.code != 0 {
			t.Fatalf("slot not released after the session ended:\n%s", r)
		}
		compareTrees(t, src, dst, archiveCmp(0))
	})
}

// TestServerExcludes: paths excluded in rsyncd.conf are invisible to
// listings and transfers, and cannot be fetched even when asked for by name.
func TestServerExcludes(t *testing.T) {
	forEachServer(t, func(t *testing.T, kind serverKind) {
		src := newTree(t, 63, 200)
		for _, f := range []string{"secret/keys.txt", "secret/sub/deeper.txt", "metadata/signing.key", "app-misc/x.key"} {
			p := filepath.Join(src, f)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("not for clients\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		srv := startServer(t, kind, serverConf{modules: []module{
			{name: "tree", path: src, exclude: []string{"/secret", "*.key", "/distfiles"}},
		}})
		hidden := func(rel string, _ bool) bool {
			return rel == "secret" || rel == "distfiles" || strings.HasSuffix(path.Base(rel), ".key")
		}
		r := mustRsync(t, "--list-only", "-r", srv.url("tree/"))
		for _, bad := range []string{"secret", "keys.txt", "signing.key", "x.key", "distfiles"} {
			if strings.Contains(r.stdout, bad) {
				t.Errorf("listing shows excluded %q:\n%s", bad, r)
			}
		}
		dst := filepath.Join(t.TempDir(), "dst")
		mustRsync(t, "-rlpt", srv.url("tree/"), dst+"/")
		o := archiveCmp(0)
		o.exclude = hidden
		compareTrees(t, src, dst, o)
		for _, p := range []string{"secret/keys.txt", "secret/", "secret/sub/deeper.txt", "metadata/signing.key", "distfiles/foo-1.0.tar.gz"} {
			t.Run("fetch "+p, func(t *testing.T) {
				out := filepath.Join(t.TempDir(), "out")
				r := rsyncCmd(t, "-r", srv.url("tree/"+p), out)
				if r.code == 0 {
					t.Errorf("fetching excluded %s succeeded:\n%s", p, r)
				}
				if entries, err := listAll(out); err == nil && len(entries) > 0 {
					t.Errorf("fetching excluded %s wrote %v", p, entries)
				}
			})
		}
	})
}

// listAll lists the regular files below (or at) p.
func listAll(p string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(p, func(q string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			out = append(out, q)
		}
		return nil
	})
	return out, err
}

// TestUnknownModule: rsyncd's exact error, exit status 5.
func TestUnknownModule(t *testing.T) {
	forEachServer(t, func(t *testing.T, kind serverKind) {
		srv := startServer(t, kind, serverConf{modules: []module{{name: "tree", path: t.TempDir()}}})
		r := rsyncCmd(t, "-r", srv.url("nope/"), filepath.Join(t.TempDir(), "dst"))
		wantRefused(t, r, 5, "@ERROR: Unknown module 'nope'")
		r = rsyncCmd(t, "--list-only", srv.url("nope/x"))
		wantRefused(t, r, 5, "@ERROR: Unknown module 'nope'")
	})
}

// TestMotd: the motd file is shown before the module list and before a
// transfer.
func TestMotd(t *testing.T) {
	forEachServer(t, func(t *testing.T, kind serverKind) {
		src := newTree(t, 64, 30)
		conf := moduleListConf(src)
		srv := startServer(t, kind, conf)
		for _, args := range [][]string{{srv.url("")}, {"-rlpt", srv.url("gentoo-portage/"), filepath.Join(t.TempDir(), "dst") + "/"}} {
			r := mustRsync(t, args...)
			if !strings.HasPrefix(r.stdout, conf.motd) {
				t.Errorf("output does not start with the motd:\n%s", r)
			}
		}
	})
}

// TestReadOnly: an upload is refused clearly and changes nothing.
func TestReadOnly(t *testing.T) {
	forEachServer(t, func(t *testing.T, kind serverKind) {
		src := newTree(t, 65, 30)
		srv := startServer(t, kind, serverConf{modules: []module{{name: "tree", path: src}}})
		up := filepath.Join(t.TempDir(), "upload.txt")
		if err := os.WriteFile(up, []byte("must not arrive\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		r := rsyncCmd(t, up, srv.url("tree/"))
		wantRefused(t, r, 0, "read only")
		if _, err := os.Stat(filepath.Join(src, "upload.txt")); !os.IsNotExist(err) {
			t.Errorf("upload reached the module: %v", err)
		}
	})
}

// TestIssueRsyncdConf: the rsyncd.conf of the issue, unchanged but for the
// path, is accepted by lanmirror: the module is listed with its comment,
// and a loopback client, outside "hosts allow = 10.13.18.0/24", is refused
// with rsyncd's message. (lanmirror only: stock rsyncd would need a lock
// file in /var/run for "max connections".)
func TestIssueRsyncdConf(t *testing.T) {
	needRsync(t)
	if !slices.Contains(serverKinds(), kindLanmirror) {
		t.Skip("LANMIRROR_INTEROP_SERVERS excludes lanmirror")
	}
	src := newTree(t, 66, 30)
	conf := `max connections = 5
use chroot = yes
read only = yes
uid = nobody
gid = nobody
hosts allow = 10.13.18.0/24
hosts deny  = *
[niden-gentoo-portage]
path = ` + src + `
comment = niden.net Gentoo Portage tree
exclude = /distfiles /packages
`
	srv := startServer(t, kindLanmirror, serverConf{raw: conf})
	r := mustRsync(t, srv.url(""))
	if !strings.Contains(r.stdout, "niden-gentoo-portage") || !strings.Contains(r.stdout, "niden.net Gentoo Portage tree") {
		t.Errorf("module list:\n%s", r)
	}
	r = rsyncCmd(t, append(portageArgs(0, true), srv.url("niden-gentoo-portage/"), filepath.Join(t.TempDir(), "repo")+"/")...)
	wantRefused(t, r, 5, "@ERROR: access denied to niden-gentoo-portage from ")
}

// TestClientVanishes: clients killed in the middle of a transfer (as
// emerge kills a slow probe) do not disturb the server: the next client
// gets the whole tree.
func TestClientVanishes(t *testing.T) {
	forEachServer(t, func(t *testing.T, kind serverKind) {
		const mod = "gentoo-portage"
		src := newTree(t, 67, 200)
		// 48 MiB of incompressible data keep a compressed transfer busy
		// for a while even on loopback.
		big := make([]byte, 48<<20)
		if _, err := rand.Read(big); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, "metadata", "big-random.bin"), big, 0o644); err != nil {
			t.Fatal(err)
		}
		srv := startServer(t, kind, serverConf{modules: []module{{name: mod, path: src}}})
		killed := 0
		for i, after := range []time.Duration{150 * time.Millisecond, 300 * time.Millisecond, 600 * time.Millisecond} {
			ctx, cancel := context.WithTimeout(context.Background(), after)
			cmd := exec.CommandContext(ctx, rsyncBin, append(portageArgs(0, i%2 == 0),
				srv.url(mod+"/"), filepath.Join(t.TempDir(), "killed")+"/")...)
			cmd.Env = clientEnv()
			cmd.WaitDelay = 5 * time.Second
			if err := cmd.Run(); err != nil && ctx.Err() != nil {
				killed++
			}
			cancel()
		}
		if killed == 0 {
			t.Fatal("every client finished before it was killed: the test proves nothing")
		}
		dst := filepath.Join(t.TempDir(), "repo")
		mustRsync(t, append(portageArgs(0, true), srv.url(mod+"/"), dst+"/")...)
		compareTrees(t, src, dst, portageCmp(0))
	})
}

// TestModuleTimeout: with "timeout = 2", a client that selects the module
// and then sends nothing is disconnected, and its connection slot
// ("max connections = 1") is free again for the next client.
func TestModuleTimeout(t *testing.T) {
	forEachServer(t, func(t *testing.T, kind serverKind) {
		src := newTree(t, 68, 30)
		srv := startServer(t, kind, serverConf{modules: []module{
			{name: "slow", path: src, timeout: 2, maxConnections: 1},
		}})
		c := holdSession(t, srv, "slow")
		defer c.Close()
		start := time.Now()
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, err := io.Copy(io.Discard, c)
		d := time.Since(start)
		if err != nil {
			t.Fatalf("stalled session not closed by the server within 20 s (timeout = 2): %v", err)
		}
		if d < time.Second {
			t.Errorf("stalled session closed after %v, before the 2 s timeout", d)
		}
		// The slot is free again (allowing the server a moment to release
		// it after closing).
		dst := filepath.Join(t.TempDir(), "dst")
		var r *rsyncResult
		for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			r = rsyncCmd(t, "-rlpt", srv.url("slow/"), dst+"/")
			if r.code == 0 || time.Now().After(deadline) {
				break
			}
		}
		if r.code != 0 {
			t.Fatalf("slot of the timed-out session not released:\n%s", r)
		}
		compareTrees(t, src, dst, archiveCmp(0))
	})
}

// TestIPv6Loopback: a daemon on [::1] serves clients over IPv6, and
// "hosts allow" takes IPv6 CIDRs.
func TestIPv6Loopback(t *testing.T) {
	if l, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	} else {
		l.Close()
	}
	forEachServer(t, func(t *testing.T, kind serverKind) {
		src := newTree(t, 69, 60)
		srv := startServer(t, kind, serverConf{host: "::1", modules: []module{
			{name: "v6", path: src, hostsAllow: []string{"::1/128"}, hostsDeny: []string{"*"}},
			{name: "v4only", path: src, hostsAllow: []string{"127.0.0.0/8"}, hostsDeny: []string{"*"}},
		}})
		dst := filepath.Join(t.TempDir(), "dst")
		mustRsync(t, append(portageArgs(0, true), srv.url("v6/"), dst+"/")...)
		compareTrees(t, src, dst, portageCmp(0))
		r := rsyncCmd(t, "-r", srv.url("v4only/"), filepath.Join(t.TempDir(), "no"))
		wantRefused(t, r, 5, "@ERROR: access denied to v4only from ")
	})
}
