package contrib

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/testutil"
)

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
)

// lanmirrorBinary builds ./cmd/lanmirror once into a world-readable
// directory (the services run it as nobody) and returns its path.
func lanmirrorBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "lanmirror-contrib-bin-")
		if err != nil {
			buildErr = err
			return
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			buildErr = err
			return
		}
		bin := filepath.Join(dir, "lanmirror")
		out, err := exec.Command("go", "build", "-o", bin, "../cmd/lanmirror").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		buildBin = bin
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildBin != "" {
		os.RemoveAll(filepath.Dir(buildBin))
	}
	os.Exit(code)
}

// openDir is a temporary directory that other users (nobody) may enter:
// t.TempDir's are private to root.
func openDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "lanmirror-contrib-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// waitListening waits until addr accepts connections; alive reports
// whether the server may still come up.
func waitListening(t *testing.T, addr string, alive func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if !alive() {
			t.Fatalf("the server gave up before listening on %s", addr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s after 30 s", addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitClosed waits until nothing accepts connections on addr.
func waitClosed(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("%s still accepts connections 30 s after the stop", addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// get fetches url and returns the status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 20 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// rsyncList lists the modules of the rsync daemon at addr with the stock
// client.
func rsyncList(t *testing.T, rsync, addr string) string {
	t.Helper()
	out, err := exec.Command(rsync, "--contimeout=10", "--timeout=20", "rsync://"+addr+"/").CombinedOutput()
	if err != nil {
		t.Fatalf("rsync rsync://%s/: %v\n%s", addr, err, out)
	}
	return string(out)
}

// nobody returns the uid of the user nobody, its group's gid and name
// (nogroup on Debian, nobody elsewhere).
func nobody(t *testing.T) (uid, gid int, group string) {
	t.Helper()
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("user nobody: %v", err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		t.Fatalf("group of nobody: %v", err)
	}
	return uid, gid, g.Name
}

// requireRoot ends the test when not root (the services switch users):
// a failure, unless LANMIRROR_ALLOW_SKIP=1.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testutil.MissingTool(t, "this test starts services as another user (and openrc-run in a mount namespace): it must run as root")
	}
}

// unitValues parses a systemd unit into "Section.Key" -> values.
func unitValues(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vals := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: line %q is no key=value", path, line)
			}
			key := section + "." + strings.TrimSpace(k)
			vals[key] = append(vals[key], strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return vals
}

// waitFileContains waits until the file at path holds want (the access
// log is written just after the answer, possibly batched) and returns
// its content; the error says what the file held at the deadline.
func waitFileContains(path, want string) (string, error) {
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && strings.Contains(string(b), want) {
			return string(b), nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("%s lacks %q after 15 s:\n%s", path, want, b)
			}
			return string(b), err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
