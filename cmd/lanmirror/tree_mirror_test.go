package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/testtree"
	"github.com/lanmirror/lanmirror/internal/testutil"
)

// Tests of the tree mirror end to end: stock `rsync --daemon` as upstream,
// `lanmirror sync` and `lanmirror serve --tree-upstream` (this test binary
// run as lanmirror, see htExecMain) pulling from it, and the stock rsync
// client syncing from lanmirror's daemon with Portage's options.

// portageOpts are Portage's default PORTAGE_RSYNC_OPTS.
var portageOpts = []string{"--recursive", "--links", "--safe-links", "--perms", "--times", "--omit-dir-times",
	"--compress", "--force", "--whole-file", "--delete", "--stats", "--human-readable", "--timeout=180",
	"--exclude=/distfiles", "--exclude=/local", "--exclude=/packages", "--exclude=/.git"}

// stockRsyncd is a stock `rsync --daemon` serving one module.
type stockRsyncd struct {
	url  string // rsync://127.0.0.1:PORT/gentoo-portage/
	cmd  *exec.Cmd
	done chan struct{}
}

// startStockRsyncd starts stock rsyncd serving dir as module gentoo-portage
// on a free loopback port, with extra daemon options (--bwlimit=...), and
// stops it by PID when the test ends.
func startStockRsyncd(t *testing.T, dir string, extra ...string) *stockRsyncd {
	t.Helper()
	rsync := testutil.RequireTool(t, "rsync")
	conf := t.TempDir()
	text := fmt.Sprintf("use chroot = no\nmunge symlinks = no\nreverse lookup = no\nlock file = %s\nlog file = %s\n",
		filepath.Join(conf, "lock"), filepath.Join(conf, "log"))
	if os.Geteuid() == 0 {
		text += "uid = 0\ngid = 0\n"
	}
	text += fmt.Sprintf("[gentoo-portage]\n\tpath = %s\n\tread only = yes\n", dir)
	confPath := filepath.Join(conf, "rsyncd.conf")
	if err := os.WriteFile(confPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	var out testutil.Buffer
	for attempt := 0; attempt < 5; attempt++ {
		port := freeLoopbackPort(t)
		args := append([]string{"--daemon", "--no-detach", "--config=" + confPath, "--address=127.0.0.1", "--port=" + port}, extra...)
		s := &stockRsyncd{url: "rsync://127.0.0.1:" + port + "/gentoo-portage/", cmd: exec.Command(rsync, args...), done: make(chan struct{})}
		s.cmd.Stdout, s.cmd.Stderr = &out, &out
		if err := s.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { s.cmd.Wait(); close(s.done) }()
		for i := 0; i < 300; i++ {
			c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
			if err == nil {
				c.Close()
				t.Cleanup(func() {
					s.cmd.Process.Kill()
					<-s.done
				})
				return s
			}
			select {
			case <-s.done:
				i = 300 // exited (port taken?): next attempt
			case <-time.After(20 * time.Millisecond):
			}
		}
		s.cmd.Process.Kill()
		<-s.done
	}
	t.Fatalf("stock rsyncd did not start:\n%s", out.String())
	return nil
}

// lanmirrorRun runs this test binary as `lanmirror args...` and waits.
func lanmirrorRun(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, htBinary(t), args...)
	cmd.Env = append(os.Environ(), htExecMain+"=1")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("lanmirror %v timed out:\n%s", args, e.String())
	}
	return o.String(), e.String(), err
}

// lanmirrorServe starts this test binary as `lanmirror serve args...`,
// waiting until addr accepts connections; killed (by PID) when the test
// ends.
func lanmirrorServe(t *testing.T, addr string, args ...string) *testutil.Buffer {
	t.Helper()
	cmd := exec.Command(htBinary(t), append([]string{"serve", "--allow-root"}, args...)...)
	cmd.Env = append(os.Environ(), htExecMain+"=1")
	var out testutil.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("lanmirror serve output:\n%s", out.String())
		}
	})
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return &out
		}
		select {
		case <-exited:
			t.Fatalf("lanmirror serve exited:\n%s", out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if i > 400 {
			t.Fatalf("lanmirror serve not listening on %s:\n%s", addr, out.String())
		}
	}
}

// waitFor polls cond (bounded) and fails with what when it stays false.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// portageSync runs the stock rsync client with Portage's options from url
// into dst.
func portageSync(t *testing.T, url, dst string, extra ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	args := append(append(append([]string{}, portageOpts...), extra...), url, dst+"/")
	cmd := exec.CommandContext(ctx, "rsync", args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rsync %v: %v\n%s", args, err, out)
	}
}

// treeState describes every entry below root: type, permission bits and
// contents (a digest) or symlink target.
func treeState(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	root, err := filepath.EvalSymlinks(root) // DATA/tree/current
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "link " + l
		case fi.IsDir():
			out[rel] = fmt.Sprintf("dir %o", fi.Mode().Perm())
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			out[rel] = fmt.Sprintf("file %o %d %s", fi.Mode().Perm(), len(b), hex.EncodeToString(sum[:8]))
		default:
			out[rel] = "other " + fi.Mode().String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sameTree fails unless the trees at got and want are identical.
func sameTree(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	var diffs []string
	for k, v := range want {
		if got[k] != v {
			diffs = append(diffs, fmt.Sprintf("%s: got %q, want %q", k, got[k], v))
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: extra %q", k, v))
		}
	}
	if len(diffs) > 0 {
		sort.Strings(diffs)
		if len(diffs) > 20 {
			diffs = append(diffs[:20], fmt.Sprintf("... %d more", len(diffs)-20))
		}
		t.Fatalf("%s: trees differ (%d entries vs %d):\n%s", what, len(got), len(want), strings.Join(diffs, "\n"))
	}
	if len(want) < 10 {
		t.Fatalf("%s: tree too small to mean anything (%d entries)", what, len(want))
	}
}

// genTree writes a generated Gentoo-like tree.
func genTree(t *testing.T, dir string, files int, seed uint64) {
	t.Helper()
	if _, err := testtree.Generate(dir, testtree.Options{Seed: seed, Files: files, BigFile: -1, PortageExcluded: true}); err != nil {
		t.Fatal(err)
	}
}

func countLines(s, substr string) int {
	n := 0
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

// TestTreeMirrorFromStockRsyncd: `lanmirror sync` and `serve
// --tree-upstream` pull from stock rsyncd over rsync://; a stock client
// then syncs from lanmirror's daemon and gets exactly what it gets from
// the upstream directly (contents, modes, symlinks). Failover past a dead
// upstream, every upstream failing (the old tree still served), and an
// older upstream refused.
func TestTreeMirrorFromStockRsyncd(t *testing.T) {
	testutil.RequireTool(t, "rsync")
	up := filepath.Join(t.TempDir(), "up")
	genTree(t, up, 600, 8)
	stock := startStockRsyncd(t, up)
	// The oracle: what stock rsync gives a Portage client directly.
	direct := filepath.Join(t.TempDir(), "direct")
	portageSync(t, stock.url, direct)
	want := treeState(t, direct)

	t.Run("SyncCommand", func(t *testing.T) {
		data := t.TempDir()
		dead := "rsync://127.0.0.1:" + freeLoopbackPort(t) + "/gentoo-portage/"
		out, errOut, err := lanmirrorRun(t, "sync", "--data", data, "--upstream", dead, "--upstream", stock.url)
		if err != nil || !strings.HasPrefix(out, "published ") || !strings.Contains(out, "from "+stock.url) {
			t.Fatalf("sync with a dead first upstream: %v\n%s\n%s", err, out, errOut)
		}
		if n := countLines(errOut, "tree pull"); n != 1 || !strings.Contains(errOut, "result=published") {
			t.Fatalf("want exactly one log line for the pull, got %d:\n%s", n, errOut)
		}
		sameTree(t, "published snapshot", treeState(t, filepath.Join(data, "tree", "current")), want)

		// Same upstream again: unchanged.
		out, errOut, err = lanmirrorRun(t, "sync", "--data", data, "--upstream", stock.url)
		if err != nil || !strings.HasPrefix(out, "unchanged ") {
			t.Fatalf("second sync: %v\n%s\n%s", err, out, errOut)
		}
	})

	t.Run("ServeTreeUpstream", func(t *testing.T) {
		data := t.TempDir()
		addr := "127.0.0.1:" + freeLoopbackPort(t)
		dead := "rsync://127.0.0.1:" + freeLoopbackPort(t) + "/gentoo-portage/"
		log := lanmirrorServe(t, addr, "--http", "", "--rsync", addr, "--data", data,
			"--tree-upstream", dead, "--tree-upstream", stock.url, "--tree-interval", "1h")
		waitFor(t, 2*time.Minute, "the first pull", func() bool { return strings.Contains(log.String(), "msg=\"tree pull\"") })
		if !strings.Contains(log.String(), "result=published") || countLines(log.String(), "tree pull") != 1 {
			t.Fatalf("first pull:\n%s", log.String())
		}
		served := filepath.Join(t.TempDir(), "served")
		portageSync(t, "rsync://"+addr+"/gentoo-portage/", served)
		sameTree(t, "tree served by lanmirror", treeState(t, served), want)

		// Every upstream failing: a clear error, the old tree still served.
		cur, err := os.Readlink(filepath.Join(data, "tree", "current"))
		if err != nil {
			t.Fatal(err)
		}
		missing := filepath.Join(t.TempDir(), "missing")
		out, errOut, err := lanmirrorRun(t, "sync", "--data", data, "--upstream", dead, "--upstream", missing)
		if err == nil || !strings.Contains(errOut, "all 2 upstreams failed") || !strings.Contains(errOut, dead) || !strings.Contains(errOut, missing) {
			t.Fatalf("sync with every upstream failing: %v\n%s\n%s", err, out, errOut)
		}
		if now, _ := os.Readlink(filepath.Join(data, "tree", "current")); now != cur {
			t.Fatalf("current changed to %s after a failed pull", now)
		}
		again := filepath.Join(t.TempDir(), "again")
		portageSync(t, "rsync://"+addr+"/gentoo-portage/", again)
		sameTree(t, "tree served after the failed pull", treeState(t, again), want)

		// An older upstream tree is refused, not published.
		old := filepath.Join(t.TempDir(), "old")
		genTree(t, old, 100, 9)
		ts := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
		if err := os.WriteFile(filepath.Join(old, testtree.TimestampFile), []byte(ts.Format("Mon, 02 Jan 2006 15:04:05 +0000")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		oldStock := startStockRsyncd(t, old)
		out, errOut, err = lanmirrorRun(t, "sync", "--data", data, "--upstream", oldStock.url)
		if err == nil || !strings.Contains(errOut, "older than the local one") {
			t.Fatalf("older upstream: %v\n%s\n%s", err, out, errOut)
		}
		if now, _ := os.Readlink(filepath.Join(data, "tree", "current")); now != cur {
			t.Fatalf("older tree published as %s", now)
		}
	})
}

// twoTrees writes snapshot A's upstream and snapshot B's (A changed by a
// day of commits, with a newer timestamp.chk), and what a Portage client
// gets from each directly.
// With different, B is another tree altogether (every file to pull again).
func twoTrees(t *testing.T, files int, different bool) (upA, upB string, wantA, wantB map[string]string) {
	t.Helper()
	base := t.TempDir()
	upA, upB = filepath.Join(base, "A"), filepath.Join(base, "B")
	genTree(t, upA, files, 21)
	seedB := uint64(21)
	if different {
		seedB = 22
	}
	genTree(t, upB, files, seedB)
	if _, err := testtree.Mutate(upB, 5); err != nil {
		t.Fatal(err)
	}
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	portageSync(t, upA+"/", a)
	portageSync(t, upB+"/", b)
	return upA, upB, treeState(t, a), treeState(t, b)
}

// slowClient is a stock rsync client syncing from lanmirror with Portage's
// options, throttled so that it is still running when the test publishes.
type slowClient struct {
	cmd  *exec.Cmd
	out  testutil.Buffer
	done chan error
}

func startSlowClient(t *testing.T, url, dst string) *slowClient {
	t.Helper()
	args := append(append([]string{}, portageOpts...), "--bwlimit=40", url, dst+"/")
	c := &slowClient{cmd: exec.Command("rsync", args...), done: make(chan error, 1)}
	c.cmd.Env = append(os.Environ(), "LC_ALL=C")
	c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
		}
	})
	// The session has started (and pinned its snapshot) once files arrive.
	waitFor(t, time.Minute, "the client's first files", func() bool {
		n := 0
		filepath.WalkDir(dst, func(string, fs.DirEntry, error) error { n++; return nil })
		return n > 20
	})
	return c
}

func (c *slowClient) running() bool {
	select {
	case err := <-c.done:
		c.done <- err
		return false
	default:
		return true
	}
}

func (c *slowClient) wait(t *testing.T) {
	t.Helper()
	select {
	case err := <-c.done:
		if err != nil {
			t.Fatalf("client: %v\n%s", err, c.out.String())
		}
	case <-time.After(3 * time.Minute):
		t.Fatal("client did not finish")
	}
}

// TestTreeSnapshotPinnedDuringClientSync: a stock client syncing while a
// new snapshot is published and the old one pruned with keep 1 gets
// exactly the snapshot it started on, whole; the pinned snapshot stays
// while the client reads it and is removed after. Published by serve
// --tree-upstream itself (same process as the daemon) and by a separate
// `lanmirror sync` process.
func TestTreeSnapshotPinnedDuringClientSync(t *testing.T) {
	testutil.RequireTool(t, "rsync")
	upA, upB, wantA, wantB := twoTrees(t, 700, false)

	snapshotsOf := func(data string) []string {
		ents, _ := os.ReadDir(filepath.Join(data, "tree", "snapshots"))
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return names
	}
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }

	t.Run("ServeTreeUpstream", func(t *testing.T) {
		data := t.TempDir()
		up := filepath.Join(t.TempDir(), "up")
		if err := os.Symlink(upA, up); err != nil {
			t.Fatal(err)
		}
		addr := "127.0.0.1:" + freeLoopbackPort(t)
		log := lanmirrorServe(t, addr, "--http", "", "--rsync", addr, "--data", data,
			"--tree-upstream", up, "--tree-keep", "1", "--tree-interval", "2s")
		waitFor(t, 2*time.Minute, "snapshot A published", func() bool { return countLines(log.String(), "result=published") == 1 })
		a, err := filepath.EvalSymlinks(filepath.Join(data, "tree", "current"))
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(t.TempDir(), "dst")
		c := startSlowClient(t, "rsync://"+addr+"/gentoo-portage/", dst)

		// Upstream moves to B: the next pull publishes it and prunes.
		next := filepath.Join(t.TempDir(), "up.new")
		if err := os.Symlink(upB, next); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(next, up); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 2*time.Minute, "snapshot B published", func() bool { return countLines(log.String(), "result=published") == 2 })
		if !c.running() {
			t.Fatal("the client finished before B was published: the test did not sync across a publish (slow the client down)")
		}
		waitFor(t, time.Minute, "a prune that finds A held", func() bool { return strings.Contains(log.String(), "held="+filepath.Base(a)) })
		if !exists(filepath.Join(a, "metadata", "timestamp.chk")) {
			t.Fatal("snapshot A removed while a client reads it")
		}
		c.wait(t)
		sameTree(t, "client that started on A", treeState(t, dst), wantA)
		waitFor(t, time.Minute, "A pruned after its client left", func() bool { return strings.Contains(log.String(), "pruned="+filepath.Base(a)) })
		if exists(a) {
			t.Fatal("A still there after the pull that pruned it")
		}
		if s := snapshotsOf(data); len(s) != 1 {
			t.Fatalf("snapshots left with --tree-keep 1: %v", s)
		}
		fresh := filepath.Join(t.TempDir(), "fresh")
		portageSync(t, "rsync://"+addr+"/gentoo-portage/", fresh)
		sameTree(t, "new client", treeState(t, fresh), wantB)
	})

	t.Run("SeparateSyncProcess", func(t *testing.T) {
		data := t.TempDir()
		if out, errOut, err := lanmirrorRun(t, "sync", "--data", data, "--upstream", upA, "--keep", "1"); err != nil {
			t.Fatalf("sync A: %v\n%s\n%s", err, out, errOut)
		}
		a, err := filepath.EvalSymlinks(filepath.Join(data, "tree", "current"))
		if err != nil {
			t.Fatal(err)
		}
		addr := "127.0.0.1:" + freeLoopbackPort(t)
		lanmirrorServe(t, addr, "--http", "", "--rsync", addr, "--data", data, "--tree", filepath.Join(data, "tree", "current"))
		dst := filepath.Join(t.TempDir(), "dst")
		c := startSlowClient(t, "rsync://"+addr+"/gentoo-portage/", dst)

		out, errOut, err := lanmirrorRun(t, "sync", "--data", data, "--upstream", upB, "--keep", "1")
		if err != nil || !strings.HasPrefix(out, "published ") || !strings.Contains(errOut, "held="+filepath.Base(a)) {
			t.Fatalf("sync B during the client's session: %v\n%s\n%s", err, out, errOut)
		}
		if !c.running() {
			t.Fatal("the client finished before B was published: the test did not sync across a publish (slow the client down)")
		}
		if !exists(filepath.Join(a, "metadata", "timestamp.chk")) {
			t.Fatal("snapshot A removed while a client reads it")
		}
		c.wait(t)
		sameTree(t, "client that started on A", treeState(t, dst), wantA)
		// The next pull (nothing new upstream) prunes A.
		out, errOut, err = lanmirrorRun(t, "sync", "--data", data, "--upstream", upB, "--keep", "1")
		if err != nil || !strings.HasPrefix(out, "unchanged ") || !strings.Contains(errOut, "pruned="+filepath.Base(a)) {
			t.Fatalf("sync after the client left: %v\n%s\n%s", err, out, errOut)
		}
		if exists(a) {
			t.Fatal("A not removed after its client left")
		}
		fresh := filepath.Join(t.TempDir(), "fresh")
		portageSync(t, "rsync://"+addr+"/gentoo-portage/", fresh)
		sameTree(t, "new client", treeState(t, fresh), wantB)
	})
}

// TestTreeSyncKilledDuringPull: kill -9 of a `lanmirror sync` pulling from
// a slow stock rsyncd leaves the published tree intact and served; the
// next pull cleans up what the killed one left and publishes.
func TestTreeSyncKilledDuringPull(t *testing.T) {
	testutil.RequireTool(t, "rsync")
	upA, upB, wantA, wantB := twoTrees(t, 400, true)
	data := t.TempDir()
	if out, errOut, err := lanmirrorRun(t, "sync", "--data", data, "--upstream", upA); err != nil {
		t.Fatalf("sync A: %v\n%s\n%s", err, out, errOut)
	}
	addr := "127.0.0.1:" + freeLoopbackPort(t)
	lanmirrorServe(t, addr, "--http", "", "--rsync", addr, "--data", data, "--tree", filepath.Join(data, "tree", "current"))
	url := "rsync://" + addr + "/gentoo-portage/"
	slow := startStockRsyncd(t, upB, "--bwlimit=20")

	cmd := exec.Command(htBinary(t), "sync", "--data", data, "--upstream", slow.url)
	cmd.Env = append(os.Environ(), htExecMain+"=1")
	var out testutil.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	incoming := func() (string, int) {
		m, _ := filepath.Glob(filepath.Join(data, "tree", "snapshots", ".incoming-*"))
		if len(m) == 0 {
			return "", 0
		}
		n := 0
		filepath.WalkDir(m[0], func(string, fs.DirEntry, error) error { n++; return nil })
		return m[0], n
	}
	waitFor(t, time.Minute, "the pull under way", func() bool { _, n := incoming(); return n > 20 })
	// Served throughout: a client during the pull gets A.
	during := filepath.Join(t.TempDir(), "during")
	portageSync(t, url, during)
	sameTree(t, "served during the pull", treeState(t, during), wantA)

	left, _ := incoming()
	select {
	case <-exited:
		t.Fatalf("the pull ended before the kill:\n%s", out.String())
	default:
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	after := filepath.Join(t.TempDir(), "after")
	portageSync(t, url, after)
	sameTree(t, "served after kill -9", treeState(t, after), wantA)
	if _, err := os.Stat(left); err != nil {
		t.Fatalf("the killed pull left nothing behind (%v): it was not killed mid-pull", err)
	}

	// The next pull cleans up and publishes.
	o, errOut, err := lanmirrorRun(t, "sync", "--data", data, "--upstream", upB)
	if err != nil || !strings.HasPrefix(o, "published ") || !strings.Contains(errOut, "cleaned="+filepath.Base(left)) {
		t.Fatalf("pull after kill -9: %v\n%s\n%s", err, o, errOut)
	}
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Fatal("leftover of the killed pull not removed")
	}
	fresh := filepath.Join(t.TempDir(), "fresh")
	portageSync(t, url, fresh)
	sameTree(t, "served after the next pull", treeState(t, fresh), wantB)
}

// `lanmirror sync` shows a progress bar (files, bytes) on a terminal (a
// pty from script(1)) and none when its output is a pipe.
func TestSyncProgressBarOnTerminal(t *testing.T) {
	testutil.RequireTool(t, "rsync")
	script := testutil.RequireTool(t, "script")
	up := filepath.Join(t.TempDir(), "up")
	genTree(t, up, 300, 3)
	run := func(tty bool) string {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		args := []string{htBinary(t), "sync", "--data", t.TempDir(), "--upstream", up}
		var cmd *exec.Cmd
		if tty {
			var q []string
			for _, a := range args {
				q = append(q, "'"+a+"'")
			}
			cmd = exec.CommandContext(ctx, script, "-qec", strings.Join(q, " "), "/dev/null")
		} else {
			cmd = exec.CommandContext(ctx, args[0], args[1:]...)
		}
		cmd.Env = append(os.Environ(), htExecMain+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
		}
		return string(out)
	}
	out := run(true)
	if !regexp.MustCompile(`pulling the tree: [0-9]+ files, [0-9.]+ (B|KiB|MiB)`).MatchString(out) || !strings.Contains(out, "published ") {
		t.Errorf("no progress bar on a terminal:\n%q", out)
	}
	out = run(false)
	if strings.Contains(out, "pulling the tree") || !strings.Contains(out, "published ") {
		t.Errorf("progress bar without a terminal:\n%q", out)
	}
}
