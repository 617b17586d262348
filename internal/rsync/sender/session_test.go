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
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/rsync/flist"
	"github.com/lanmirror/lanmirror/internal/testutil"
)

// testServer is a minimal rsync daemon for tests: it does the @RSYNCD
// greeting, module and argument exchange and then calls Run.
type testServer struct {
	t     *testing.T
	root  string
	ln    net.Listener
	logs  *syncBuf
	lists *flist.Cache
	errs  chan error
	wg    sync.WaitGroup
}

// startServer serves the directory root as module "mod" on loopback
// until the test ends. With shared set, all sessions share one
// flist.Cache as the daemon does.
func startServer(t *testing.T, root string, shared bool) *testServer {
	t.Helper()
	return startServerWith(t, root, shared, nil)
}

// startServerWith is startServer with a hook that configures the shared
// cache before any session can use it.
func startServerWith(t *testing.T, root string, shared bool, setup func(*flist.Cache)) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{t: t, root: root, ln: ln, logs: &syncBuf{}, errs: make(chan error, 100)}
	r, err := os.OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	if shared {
		s.lists = flist.NewCache(r, nil, nil)
		if setup != nil {
			setup(s.lists)
		}
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				err := s.serveConn(conn, r)
				select {
				case s.errs <- err:
				default:
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
		if s.lists != nil {
			s.lists.Close() // release the directory watches now
		}
		r.Close()
	})
	return s
}

// url returns the module URL with a trailing slash.
func (s *testServer) url() string {
	return "rsync://" + s.ln.Addr().String() + "/mod/"
}

// sessionErr waits for the next session to end and returns its error.
func (s *testServer) sessionErr() error {
	select {
	case err := <-s.errs:
		return err
	case <-time.After(30 * time.Second):
		s.t.Fatal("server session did not end")
		return nil
	}
}

func (s *testServer) serveConn(conn net.Conn, r *os.Root) error {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	br := bufio.NewReader(conn)
	if _, err := io.WriteString(conn, "@RSYNCD: 31.0 md5 md4\n"); err != nil {
		return err
	}
	greet, err := br.ReadString('\n')
	if err != nil {
		return fmt.Errorf("read greeting: %w", err)
	}
	var major int
	if _, err := fmt.Sscanf(strings.TrimPrefix(greet, "@RSYNCD: "), "%d", &major); err != nil {
		return fmt.Errorf("greeting %q: %w", greet, err)
	}
	proto := min(major, 31)
	if _, err := br.ReadString('\n'); err != nil { // module line
		return err
	}
	if _, err := io.WriteString(conn, "@RSYNCD: OK\n"); err != nil {
		return err
	}
	var args []string
	sep := byte('\n')
	if proto >= 30 {
		sep = 0
	}
	for {
		a, err := br.ReadString(sep)
		if err != nil {
			return fmt.Errorf("read args: %w", err)
		}
		a = strings.TrimSuffix(a, string([]byte{sep}))
		if a == "" {
			break
		}
		args = append(args, a)
	}
	_ = conn.SetDeadline(time.Time{})
	_, err = Run(context.Background(), rwConn{br, conn}, Config{
		Protocol: proto, Args: args, Root: r, ModuleName: "mod", ClientInfo: "127.0.0.1",
		Lists:  s.lists,
		Logger: slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	return err
}

// rwConn reads through a buffered reader and keeps the connection's
// deadline methods visible to Run.
type rwConn struct {
	*bufio.Reader
	net.Conn
}

func (c rwConn) Read(p []byte) (int, error) { return c.Reader.Read(p) }

// rsyncCmd runs the stock rsync client with a deadline and returns its
// combined output and error.
func rsyncCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	testutil.RequireTool(t, "rsync")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "rsync", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
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

// portageOpts are Portage's default PORTAGE_RSYNC_OPTS (with -v).
var portageOpts = strings.Fields("--recursive --links --safe-links --perms --times --omit-dir-times --compress --force --whole-file --delete --stats --human-readable --timeout=180 --exclude=/distfiles --exclude=/local --exclude=/packages --exclude=/.git -v")

// without returns opts minus the named options.
func without(opts []string, drop ...string) []string {
	var out []string
	for _, o := range opts {
		if !slices.Contains(drop, o) {
			out = append(out, o)
		}
	}
	return out
}
