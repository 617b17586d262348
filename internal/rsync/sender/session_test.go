package sender

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// rwPair joins a buffered reader with the connection it reads from.
type rwPair struct {
	io.Reader
	io.Writer
}

// serveOnce runs a minimal @RSYNCD handshake for one client on ln and
// then calls Run; the session's error goes to done.
func serveOnce(t *testing.T, ln net.Listener, root string, logBuf *syncBuf, done chan<- error) {
	conn, err := ln.Accept()
	if err != nil {
		done <- err
		return
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(conn)
	if _, err := io.WriteString(conn, "@RSYNCD: 31.0 md5 md4\n"); err != nil {
		done <- err
		return
	}
	greet, err := br.ReadString('\n')
	if err != nil {
		done <- fmt.Errorf("read greeting: %w", err)
		return
	}
	var major int
	if _, err := fmt.Sscanf(strings.TrimPrefix(greet, "@RSYNCD: "), "%d", &major); err != nil {
		done <- fmt.Errorf("greeting %q: %w", greet, err)
		return
	}
	proto := min(major, 31)
	if _, err := br.ReadString('\n'); err != nil { // module line
		done <- err
		return
	}
	if _, err := io.WriteString(conn, "@RSYNCD: OK\n"); err != nil {
		done <- err
		return
	}
	var args []string
	sep := byte('\n')
	if proto >= 30 {
		sep = 0
	}
	for {
		a, err := br.ReadString(sep)
		if err != nil {
			done <- fmt.Errorf("read args: %w", err)
			return
		}
		a = strings.TrimSuffix(a, string([]byte{sep}))
		if a == "" {
			break
		}
		args = append(args, a)
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		done <- err
		return
	}
	defer r.Close()
	_, err = Run(context.Background(), rwPair{br, conn}, Config{
		Protocol: proto, Args: args, Root: r, ModuleName: "mod", ClientInfo: "127.0.0.1",
		Logger: slog.New(slog.NewTextHandler(logBuf, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	done <- err
}

// runClient runs the stock rsync client against a one-shot test server.
func runClient(t *testing.T, extra ...string) (string, string, error) {
	t.Helper()
	if _, err := exec.LookPath("rsync"); err != nil {
		t.Skip("stock rsync client not installed")
	}
	src := t.TempDir()
	if err := os.WriteFile(src+"/a.txt", []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	logBuf := &syncBuf{}
	go serveOnce(t, ln, src, logBuf, done)
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append(extra, "rsync://127.0.0.1:"+port+"/mod/", t.TempDir()+"/")
	cmd := exec.CommandContext(ctx, "rsync", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	_ = cmd.Run()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("server session did not end")
	}
	return out.String(), logBuf.String(), err
}

// syncBuf is a bytes.Buffer safe for concurrent use.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var portageOpts = strings.Fields("--recursive --links --safe-links --perms --times --omit-dir-times --compress --force --whole-file --delete --stats --human-readable --timeout=180 --exclude=/distfiles --exclude=/local --exclude=/packages --exclude=/.git -v")

// TestSetupWithStockClient checks that compat flags, name negotiation, the
// seed, multiplexing and the filter list work with the stock client at
// every protocol: the client must get as far as the server's explicit
// error message, and the session must fail for that reason only.
func TestSetupWithStockClient(t *testing.T) {
	for _, proto := range []int{27, 28, 29, 30, 31} {
		for _, z := range []bool{false, true} {
			t.Run(fmt.Sprintf("p%d-z%v", proto, z), func(t *testing.T) {
				o := append([]string{}, portageOpts...)
				if !z {
					o = o[:0]
					for _, a := range portageOpts {
						if a != "--compress" {
							o = append(o, a)
						}
					}
				}
				o = append(o, "--protocol="+strconv.Itoa(proto))
				out, logs, err := runClient(t, o...)
				if err == nil || err.Error() != "file list not implemented" {
					t.Fatalf("session error %v; client output:\n%s", err, out)
				}
				if !strings.Contains(out, "file list not available on this server yet") {
					t.Fatalf("client did not receive the server's message:\n%s", out)
				}
				// The excludes arrive in the filter list, in the
				// protocol's rule syntax.
				want := "- /distfiles"
				if proto < 29 {
					want = "/distfiles"
				}
				if !strings.Contains(logs, want) || !strings.Contains(logs, "/.git") {
					t.Fatalf("filter rules not received (want %q):\n%s", want, logs)
				}
				wantSum := "checksum=md4"
				if proto >= 30 {
					wantSum = "checksum=md5"
				}
				wantComp := "compress=\"\""
				if z {
					wantComp = "compress=zlib"
				}
				if !strings.Contains(logs, wantSum) || !strings.Contains(logs, wantComp) {
					t.Fatalf("negotiation: want %s %s:\n%s", wantSum, wantComp, logs)
				}
			})
		}
	}
}
