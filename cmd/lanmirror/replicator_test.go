package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/distcache"
	"github.com/lanmirror/lanmirror/internal/testutil"
)

// The seed's /etc/conf.d/http-replicator, word for word.
const seedDaemonOpts = "--dir /var/cache/http-replicator --user portage --alias /usr/portage/packages/All:All --log /var/log/http-replicator.log --ip 10.13.18.* --port 8080"

// ensureUser makes sure the system user name exists (created for the test
// and removed after it when missing).
func ensureUser(t *testing.T, name string) {
	t.Helper()
	if _, err := user.Lookup(name); err == nil {
		return
	}
	useradd := testutil.RequireTool(t, "useradd")
	if out, err := exec.Command(useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		if userdel, err := exec.LookPath("userdel"); err == nil {
			exec.Command(userdel, name).Run()
		}
	})
}

// lanmirror replicator with the seed's DAEMON_OPTS unchanged (paths moved
// to a temporary directory, the port to a free one): it runs as portage,
// answers http_proxy clients (stock wget) from its cache below --dir,
// serves the alias, logs to --log, and allows 10.13.18.* and loopback.
func TestReplicatorSeedOptions(t *testing.T) {
	requireRoot(t)
	wget := testutil.RequireTool(t, "wget")
	ensureUser(t, "portage")
	portage, err := lookupIdentity("portage", "")
	if err != nil {
		t.Fatal(err)
	}
	work := worldReadableDir(t)
	cacheDir := filepath.Join(work, "var/cache/http-replicator") // created by lanmirror, owned by portage
	pkgDir := filepath.Join(work, "usr/portage/packages/All")
	writeTestFile(t, pkgDir, "foo-1.0.tbz2", "binary package\n", 0o644)
	for _, d := range []string{filepath.Join(work, "usr"), filepath.Join(work, "usr/portage"), filepath.Join(work, "usr/portage/packages"), pkgDir} {
		os.Chmod(d, 0o755)
	}
	os.MkdirAll(filepath.Join(work, "var/log"), 0o755)
	logFile := filepath.Join(work, "var/log/http-replicator.log")
	port := freeLoopbackPort(t)
	opts := strings.NewReplacer(
		"/var/cache/http-replicator", cacheDir,
		"/usr/portage/packages/All", pkgDir,
		"/var/log/http-replicator.log", logFile,
		"--port 8080", "--port "+port,
	).Replace(seedDaemonOpts)

	up := newHTUpstream(t)
	data := htData(300_000, 31)
	up.put("/distfiles/bar-2.tar.gz", data)
	// The seed's rsyncd.conf, its path moved; served by the same process.
	tree := filepath.Join(work, "portage")
	writeTestFile(t, tree, "metadata/timestamp.chk", "Thu, 03 Dec 2026 00:00:00 +0000\n", 0o644)
	writeTestFile(t, tree, "distfiles/not-served.tar.gz", "x", 0o644)
	os.Chmod(tree, 0o755)
	os.Chmod(filepath.Join(tree, "metadata"), 0o755)
	rsyncdConf := filepath.Join(work, "rsyncd.conf")
	writeTestFile(t, work, "rsyncd.conf", "max connections = 5\nuse chroot = yes\nread only = yes\nuid = nobody\ngid = nobody\n"+
		"hosts allow = 10.13.18.0/24 127.0.0.1\nhosts deny  = *\n[niden-gentoo-portage]\npath = "+tree+
		"\ncomment = niden.net Gentoo Portage tree\nexclude = /distfiles /packages\n", 0o644)
	rsyncAddr := "127.0.0.1:" + freeLoopbackPort(t)
	args := append([]string{"replicator"}, strings.Fields(opts)...)
	args = append(args, "--rsyncd-conf", rsyncdConf, "--rsync", rsyncAddr, "--mirror", up.ts.URL, "--config", "")
	p := startLanmirror(t, "127.0.0.1:"+port, args...)
	p.waitLog(t, "lanmirror serving")
	n := strconv.Itoa(portage.uid)
	if got := procIDs(t, p.cmd.Process.Pid, "Uid"); got != strings.Join([]string{n, n, n, n}, " ") {
		t.Fatalf("uids %q, want portage (%s)\n%s", got, n, p.out.String())
	}
	if !strings.Contains(p.out.String(), "10.13.18.*") {
		t.Errorf("allow list without 10.13.18.*:\n%s", p.out.String())
	}

	// Portage with http_proxy, as with http-replicator.
	dir := t.TempDir()
	cmd := exec.Command(wget, "--no-config", "-t", "5", "--passive-ftp", "-O", "bar-2.tar.gz",
		"http://distfiles.gentoo.org/distfiles/bar-2.tar.gz")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "http_proxy=http://127.0.0.1:" + port}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("wget through the replicator: %v\n%s\n%s", err, out, p.out.String())
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "bar-2.tar.gz")); !bytes.Equal(got, data) {
		t.Fatalf("fetched %d bytes, want %d", len(got), len(data))
	}
	cached := filepath.Join(cacheDir, distcache.DistfilesPrefix, "bar-2.tar.gz")
	if got, err := os.ReadFile(cached); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("not cached below --dir: %v", err)
	}
	if uid, _ := ownerOf(t, cacheDir); uid != portage.uid {
		t.Errorf("--dir owned by %d, want portage", uid)
	}
	resp, err := http.Get("http://127.0.0.1:" + port + "/All/foo-1.0.tbz2")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || b.String() != "binary package\n" {
		t.Fatalf("alias /All/: %d %q", resp.StatusCode, b.String())
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		logged, _ := os.ReadFile(logFile)
		if bytes.Contains(logged, []byte("bar-2.tar.gz")) && bytes.Contains(logged, []byte("/All/foo-1.0.tbz2")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("--log %s lacks the requests:\n%s", logFile, logged)
		}
		time.Sleep(50 * time.Millisecond)
	}
	rsyncBin := testutil.RequireTool(t, "rsync")
	dst := t.TempDir()
	if out, err := exec.Command(rsyncBin, "-a", "--timeout=60", "rsync://"+rsyncAddr+"/niden-gentoo-portage/", dst+"/").CombinedOutput(); err != nil {
		t.Fatalf("rsync from the replicator's rsync side: %v\n%s\n%s", err, out, p.out.String())
	}
	if _, err := os.Stat(filepath.Join(dst, "metadata/timestamp.chk")); err != nil {
		t.Fatalf("tree not synced: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dst, "distfiles")); err == nil {
		t.Fatal("excluded /distfiles synced")
	}
	p.signal(t, syscall.SIGTERM)
	if err := p.wait(t, 40*time.Second); err != nil {
		t.Fatalf("exit: %v\n%s", err, p.out.String())
	}
}

// --external: downloads go through the upstream HTTP proxy; --static,
// --flat and --timeout are accepted with a warning; --daemon detaches and
// --pid names the detached process.
func TestReplicatorExternalDaemonPid(t *testing.T) {
	data := htData(120_000, 32)
	var proxied atomic.Int32
	// An upstream proxy: answers absolute-URI requests for the mirror
	// host, which does not exist.
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Host != "mirror.invalid" || r.URL.Path != "/distfiles/ext-1.tar.gz" {
			http.Error(w, "unexpected "+r.URL.String(), http.StatusBadGateway)
			return
		}
		proxied.Add(1)
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.Write(data)
	}))
	defer proxy.Close()
	pu, _ := url.Parse(proxy.URL)

	work := t.TempDir()
	pidFile := filepath.Join(work, "replicator.pid")
	port := freeLoopbackPort(t)
	p := startLanmirror(t, "", "replicator", "--allow-root", "--config", "", "--dir", filepath.Join(work, "cache"),
		"--port", port, "--ip", "10.13.18.*", "--external", pu.Host, "--mirror", "http://mirror.invalid",
		"--static", "--flat", "--timeout", "15", "--daemon", "--pid", pidFile, "--log", filepath.Join(work, "log"))
	if err := p.wait(t, 30*time.Second); err != nil {
		t.Fatalf("--daemon: the starting process failed: %v\n%s", err, p.out.String())
	}
	pidText, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("--pid: %v\n%s", err, p.out.String())
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(pidText)))
	if err != nil || pid == p.cmd.Process.Pid {
		t.Fatalf("--pid holds %q (starter %d)", pidText, p.cmd.Process.Pid)
	}
	daemon, _ := os.FindProcess(pid)
	t.Cleanup(func() { daemon.Signal(syscall.SIGKILL) })
	if !strings.Contains(p.out.String(), strconv.Itoa(pid)) {
		t.Errorf("the daemon's pid is not printed:\n%s", p.out.String())
	}
	base := "http://127.0.0.1:" + port
	deadline := time.Now().Add(20 * time.Second)
	var resp *http.Response
	for {
		resp, err = http.Get(base + "/distfiles/ext-1.tar.gz")
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(work, "log"))
		t.Fatalf("daemon not answering: %v\n%s", err, log)
	}
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(b.Bytes(), data) || proxied.Load() != 1 {
		t.Fatalf("through --external: %d, %d bytes, %d proxied requests", resp.StatusCode, b.Len(), proxied.Load())
	}
	log, _ := os.ReadFile(filepath.Join(work, "log"))
	for _, opt := range []string{"--static", "--flat", "--timeout"} {
		if !bytes.Contains(log, []byte(opt)) {
			t.Errorf("no warning for %s in the log:\n%s", opt, log)
		}
	}
	if err := daemon.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(40 * time.Second)
	for daemon.Signal(syscall.Signal(0)) == nil {
		if time.Now().After(deadline) {
			t.Fatal("daemon did not stop on SIGTERM")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
