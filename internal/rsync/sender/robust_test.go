package sender

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/rsync/flist"
	"github.com/lanmirror/lanmirror/internal/rsync/wire"
	"github.com/lanmirror/lanmirror/internal/testutil"
)

// TestVanishedFile removes a file after the shared list was built: the
// client is told the file vanished, gets everything else,
// and the session itself succeeds.
func TestVanishedFile(t *testing.T) {
	for _, proto := range []string{"27", "29", "30", "31"} {
		t.Run("p"+proto, func(t *testing.T) {
			src := t.TempDir()
			makeTree(t, src, 20)
			// Keep the stale scan: no recheck, no directory watch.
			srv := startServerWith(t, src, true, func(c *flist.Cache) { c.Recheck, c.Watch = time.Hour, false })
			syncOnce(t, srv, t.TempDir(), "-rlpt", "--protocol="+proto)
			if err := os.Remove(filepath.Join(src, "metadata", "timestamp.chk")); err != nil {
				t.Fatal(err)
			}
			dst := t.TempDir()
			out, err := rsyncCmd(t, "-rlpt", "--protocol="+proto, srv.url(), dst+"/")
			// From 30 the client learns of it (MSG_NO_SEND, MSG_IO_ERROR)
			// and exits with 24; below 30 only the warning reaches it.
			var ee interface{ ExitCode() int }
			if !strings.Contains(out, "vanished") ||
				(proto >= "30" && (!errors.As(err, &ee) || ee.ExitCode() != 24)) {
				t.Fatalf("want a vanished message (and exit 24 from 30), got %v:\n%s", err, out)
			}
			if serr := srv.sessionErr(); serr != nil {
				t.Fatalf("session: %v", serr)
			}
			if _, err := os.Stat(filepath.Join(dst, "metadata", "big file.bin")); err != nil {
				t.Errorf("other files not sent: %v", err)
			}
		})
	}
}

// TestMissingSourcePath asks for a path that does not exist: the client
// gets the sender's message and exit code 23; the server stays up.
func TestMissingSourcePath(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src, 5)
	srv := startServer(t, src, true)
	for _, proto := range []string{"27", "29", "30", "31"} {
		// Alone (empty list) and beside a path that exists.
		for _, extra := range []string{"", "Manifest"} {
			args := []string{"-rlpt", "--protocol=" + proto, srv.url() + "no/such/file"}
			if extra != "" {
				args = append(args, srv.url()+extra)
			}
			dst := t.TempDir()
			out, err := rsyncCmd(t, append(args, dst+"/")...)
			var ee interface{ ExitCode() int }
			if !errors.As(err, &ee) || ee.ExitCode() != 23 || !strings.Contains(out, "no/such/file") {
				t.Fatalf("p%s %q: want exit 23 naming the path, got %v:\n%s", proto, extra, err, out)
			}
			srv.sessionErr()
			if extra != "" {
				if _, err := os.Stat(filepath.Join(dst, extra)); err != nil {
					t.Errorf("p%s: existing path not sent: %v", proto, err)
				}
			}
		}
	}
	// With --ignore-missing-args the missing path is skipped silently.
	dst := t.TempDir()
	out, err := rsyncCmd(t, "-rlpt", "--ignore-missing-args", srv.url()+"no/such/file", srv.url()+"Manifest", dst+"/")
	if serr := srv.sessionErr(); err != nil || serr != nil {
		t.Fatalf("--ignore-missing-args: %v / %v\n%s", err, serr, out)
	}
	if strings.Contains(out, "no/such/file") {
		t.Errorf("missing path reported despite --ignore-missing-args:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dst, "Manifest")); err != nil {
		t.Errorf("existing path not sent: %v", err)
	}
	dst = t.TempDir()
	syncOnce(t, srv, dst, "-rlpt")
	compareTrees(t, src, dst, false)
}

// TestConcurrentClients runs several clients at once on one shared list.
func TestConcurrentClients(t *testing.T) {
	testutil.RequireTool(t, "rsync") // before the clients' goroutines
	src := t.TempDir()
	makeTree(t, src, 100)
	srv := startServer(t, src, true)
	const n = 5
	dsts := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range dsts {
		dsts[i] = t.TempDir()
		wg.Add(1)
		go func(dst string) {
			defer wg.Done()
			out, err := rsyncCmd(t, append(portageOpts, srv.url(), dst+"/")...)
			if err != nil {
				errs <- errors.New(err.Error() + "\n" + out)
			}
		}(dsts[i])
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for range dsts {
		if err := srv.sessionErr(); err != nil {
			t.Error(err)
		}
	}
	for _, d := range dsts {
		compareTrees(t, src, d, true, portageSkip...)
	}
}

// runRaw starts Run on one end of a loopback connection and returns the
// other end and a channel with Run's result.
func runRaw(t *testing.T, root string, proto int, args []string, timeout time.Duration) (net.Conn, <-chan error) {
	return runRawCtx(t, context.Background(), root, proto, args, timeout)
}

// runRawCtx is runRaw with a context for the session.
func runRawCtx(t *testing.T, ctx context.Context, root string, proto int, args []string, timeout time.Duration) (net.Conn, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		defer r.Close()
		defer server.Close()
		_, err := Run(ctx, rwConn{bufio.NewReader(server), server}, Config{
			Protocol: proto, Args: args, Root: r, ModuleName: "mod", Timeout: timeout,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		done <- err
	}()
	return client, done
}

// TestStalledClientTimesOut: a client that stops talking after the setup
// is dropped once the timeout passes, with a keep-alive sent meanwhile.
func TestStalledClientTimesOut(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src, 3)
	args := []string{"--server", "--sender", "-lr", "--timeout=2", ".", "mod/"}
	client, done := runRaw(t, src, 29, args, 0)
	var got bytes.Buffer
	copied := make(chan struct{})
	go func() { io.Copy(&got, client); close(copied) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "timeout") {
			t.Fatalf("want a timeout error, got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stalled session not dropped")
	}
	<-copied // the server closed the connection
	// seed (4 bytes), then at least one empty data frame (keep-alive).
	if b := got.Bytes(); len(b) < 8 || !bytes.Contains(b[4:], []byte{0, 0, 0, 7}) {
		t.Errorf("no keep-alive frame in %x", b)
	}
}

// TestBadIndexEndsSession sends a file index beyond the list: the
// session ends with a protocol error instead of hanging or panicking.
func TestBadIndexEndsSession(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src, 3)
	args := []string{"--server", "--sender", "-lr", ".", "mod/"}
	client, done := runRaw(t, src, 29, args, 5*time.Second)
	go io.Copy(io.Discard, client)
	_ = wire.WriteInt32(client, 0)      // empty filter list
	_ = wire.WriteInt32(client, 100000) // bogus index
	_ = wire.WriteUint16(client, itemTransfer)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "invalid file index") {
			t.Fatalf("want an index error, got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("session did not end")
	}
}

// TestCancelEndsSession cancels the context of a session waiting for its
// client: Run returns promptly.
func TestCancelEndsSession(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src, 3)
	ctx, cancel := context.WithCancel(context.Background())
	args := []string{"--server", "--sender", "-lr", ".", "mod/"}
	client, done := runRawCtx(t, ctx, src, 31, args, time.Minute)
	go io.Copy(io.Discard, client)
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("want context.Canceled, got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancelled session did not end")
	}
}

// TestCopyLinks checks -L, -k and --copy-unsafe-links: referents inside
// the module are sent as files and directories; the link pointing
// outside is never followed (reported, exit code 23).
func TestCopyLinks(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src, 10)
	srv := startServer(t, src, true)
	kind := func(p string) string {
		fi, err := os.Lstat(p)
		switch {
		case err != nil:
			return "missing"
		case fi.Mode()&os.ModeSymlink != 0:
			return "link"
		case fi.IsDir():
			return "dir"
		}
		return "file"
	}
	for _, c := range []struct {
		opt                             string
		linkIn, linkDir, inDir, linkOut string
	}{
		{"-L", "file", "dir", "file", "missing"},
		{"-k", "link", "dir", "file", "link"}, // -k follows directory links only
		{"--copy-unsafe-links", "link", "link", "missing", "missing"},
	} {
		t.Run(c.opt, func(t *testing.T) {
			dst := t.TempDir()
			out, err := rsyncCmd(t, "-rlpt", c.opt, srv.url(), dst+"/")
			var ee interface{ ExitCode() int }
			if c.linkOut == "missing" && (!errors.As(err, &ee) || ee.ExitCode() != 23 || !strings.Contains(out, "link-out")) {
				t.Fatalf("want exit 23 naming link-out, got %v:\n%s", err, out)
			}
			if c.linkOut != "missing" && err != nil {
				t.Fatalf("rsync: %v\n%s", err, out)
			}
			if serr := srv.sessionErr(); serr != nil {
				t.Fatalf("session: %v", serr)
			}
			p := filepath.Join(dst, "profiles")
			if k := kind(filepath.Join(p, "link-in")); k != c.linkIn {
				t.Errorf("link-in is a %s, want %s", k, c.linkIn)
			}
			if k := kind(filepath.Join(p, "link-dir")); k != c.linkDir {
				t.Errorf("link-dir is a %s, want %s", k, c.linkDir)
			}
			if k := kind(filepath.Join(p, "link-dir", "a b.txt")); k != c.inDir && !(c.inDir == "missing" && k == "file") {
				t.Errorf("link-dir/a b.txt is a %s, want %s", k, c.inDir)
			}
			if k := kind(filepath.Join(p, "link-out")); k != c.linkOut {
				t.Errorf("link-out delivered as a %s, want %s", k, c.linkOut)
			}
			if c.linkIn == "file" {
				if b, _ := os.ReadFile(filepath.Join(p, "link-in")); string(b) != "spaces\n" {
					t.Errorf("link-in content %q", b)
				}
			}
		})
	}
}

// TestCopyLinksLoop follows a symlink loop with -L: the list stays
// bounded and the session ends.
func TestCopyLinksLoop(t *testing.T) {
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "a", "f"), []byte("f"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"a/up1", "a/up2"} {
		if err := os.Symlink("..", filepath.Join(src, l)); err != nil {
			t.Fatal(err)
		}
	}
	srv := startServer(t, src, true)
	out, _ := rsyncCmd(t, "-rL", "--list-only", srv.url())
	srv.sessionErr()
	if n := strings.Count(out, "\n"); n > maxFollowed+100 {
		t.Fatalf("listing of %d lines", n)
	}
}

// TestClientErrorExit: a protocol-31 client that reports a fatal error
// (MSG_ERROR_EXIT) gets the empty MSG_ERROR_EXIT answer stock senders
// give, and the session ends with the client's error.
func TestClientErrorExit(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src, 3)
	args := []string{"--server", "--sender", "-lr", ".", "mod/"}
	client, done := runRaw(t, src, 31, args, 5*time.Second)
	var got bytes.Buffer
	copied := make(chan struct{})
	go func() { io.Copy(&got, client); close(copied) }()
	frame := func(code byte, payload []byte) []byte {
		n := len(payload)
		return append([]byte{byte(n), byte(n >> 8), byte(n >> 16), 7 + code}, payload...)
	}
	msg := append(frame(0, []byte{0, 0, 0, 0}), frame(86, []byte{11, 0, 0, 0})...)
	if _, err := client.Write(msg); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, wire.ErrClientError) {
			t.Fatalf("want the client's error, got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("session did not end")
	}
	<-copied
	if !bytes.HasSuffix(got.Bytes(), []byte{0, 0, 0, 7 + 86}) {
		t.Errorf("no empty MSG_ERROR_EXIT at the end of % x", got.Bytes())
	}
}

// TestBwLimit: --bwlimit (KiB/s, forwarded by the client) slows the
// sender down.
func TestBwLimit(t *testing.T) {
	src := t.TempDir()
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i * 7919 >> 3)
	}
	if err := os.WriteFile(filepath.Join(src, "one-mib"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, src, true)
	start := time.Now()
	syncOnce(t, srv, t.TempDir(), "-rt", "--bwlimit=1024")
	if d := time.Since(start); d < 800*time.Millisecond {
		t.Errorf("1 MiB at 1024 KiB/s took %v", d)
	}
}
