package tree

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/dirlock"
	"github.com/lanmirror/lanmirror/internal/testutil"
)

// lineLog is a logger whose lines a test can count.
func lineLog() (*slog.Logger, *testutil.Buffer) {
	var b testutil.Buffer
	return slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelInfo})), &b
}

func logLines(b *testutil.Buffer) []string {
	s := strings.TrimSpace(b.String())
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// deadRsyncURL is an rsync:// URL on a loopback port nobody listens on.
func deadRsyncURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "rsync://" + addr + "/gentoo-portage/"
}

func TestFailoverToNextUpstream(t *testing.T) {
	needRsync(t)
	good := makeUpstream(t)
	st, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	log, logs := lineLog()
	dead := deadRsyncURL(t)
	sy := &Syncer{Store: st, Upstreams: []string{dead, filepath.Join(t.TempDir(), "missing"), good},
		Backoff: 10 * time.Millisecond, Log: log}
	res, err := sy.Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || res.Upstream != good {
		t.Fatalf("result %+v, want published from %s", res, good)
	}
	if got := readTree(t, st.CurrentPath()+"/"); got["app-misc/foo/foo-1.ebuild"] != "EAPI=8\n" {
		t.Fatalf("published tree: %v", got)
	}
	lines := logLines(logs)
	if len(lines) != 1 || !strings.Contains(lines[0], "tree pull") || !strings.Contains(lines[0], "result=published") ||
		!strings.Contains(lines[0], "upstream="+good) || !strings.Contains(lines[0], "files=3") || !strings.Contains(lines[0], "bytes=") {
		t.Fatalf("want one log line for the pull, got:\n%s", logs.String())
	}

	// Every upstream failing: the published snapshot stays, the error
	// names each upstream.
	stamp(t, good, time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC))
	missing := filepath.Join(t.TempDir(), "missing")
	sy.Upstreams = []string{dead, missing}
	log, logs = lineLog()
	sy.Log = log
	_, err = sy.Sync(context.Background())
	if err == nil {
		t.Fatal("sync with every upstream failing succeeded")
	}
	for _, u := range sy.Upstreams {
		if !strings.Contains(err.Error(), u) {
			t.Errorf("error does not name %s: %v", u, err)
		}
	}
	if !strings.Contains(err.Error(), "all 2 upstreams failed") {
		t.Errorf("unclear error: %v", err)
	}
	if cur, _, _ := st.Current(); cur.ID != res.Snapshot.ID {
		t.Fatal("current changed after failed sync")
	}
	if lines := logLines(logs); len(lines) != 1 || !strings.Contains(lines[0], "result=failed") {
		t.Fatalf("want one log line for the failed pull, got:\n%s", logs.String())
	}
}

// The backoff between upstreams grows and is capped.
func TestFailoverBackoff(t *testing.T) {
	needRsync(t)
	st, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var ups []string
	for range 5 {
		ups = append(ups, filepath.Join(t.TempDir(), "missing"))
	}
	var b testutil.Buffer
	log := slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sy := &Syncer{Store: st, Upstreams: ups, Backoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Log: log}
	if _, err := sy.Sync(context.Background()); err == nil {
		t.Fatal("sync succeeded")
	}
	var waits []string
	for _, l := range logLines(&b) {
		if strings.Contains(l, "trying the next upstream") {
			_, after, _ := strings.Cut(l, "after=")
			waits = append(waits, after)
		}
	}
	if got := strings.Join(waits, " "); got != "10ms 20ms 20ms 20ms" {
		t.Fatalf("waits between the 5 upstreams: %q, want 10ms 20ms 20ms 20ms (doubling, capped)", got)
	}
	// A cancelled context stops the failover.
	ctx, cancel := context.WithCancel(context.Background())
	sy.Backoff, sy.MaxBackoff = time.Hour, time.Hour
	go func() { time.Sleep(300 * time.Millisecond); cancel() }()
	if _, err := sy.Sync(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled failover: %v", err)
	}
}

// fakeProbeRsync writes an rsync wrapper that answers the timestamp probe
// with a newer timestamp than the tree it then transfers (an upstream that
// changed, or lied, between probe and pull).
func fakeProbeRsync(t *testing.T, probe time.Time) string {
	real := testutil.RequireTool(t, "rsync")
	p := filepath.Join(t.TempDir(), "rsync")
	script := fmt.Sprintf(`#!/bin/sh
for a in "$@"; do last2=$last; last=$a; done
case "$last2" in
*/metadata/timestamp.chk) printf '%%s\n' '%s' > "$last/timestamp.chk"; exit 0;;
esac
exec %s "$@"
`, probe.UTC().Format(TimestampLayout), real)
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// The timestamp of what was pulled decides, not the probe.
func TestRollbackOfPulledTreeRefused(t *testing.T) {
	needRsync(t)
	up := makeUpstream(t)
	st, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sy := &Syncer{Store: st, Upstreams: []string{up}}
	first, err := sy.Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The upstream now has an older tree but probes as newer.
	writeFile(t, filepath.Join(up, "app-misc/foo/foo-0.ebuild"), "EAPI=7\n")
	stamp(t, up, time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC))
	sy.RsyncPath = fakeProbeRsync(t, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	res, err := sy.Sync(context.Background())
	if !errors.Is(err, ErrUpstreamOutdated) || !strings.Contains(err.Error(), "pulled tree") {
		t.Fatalf("rolled back tree: %+v %v", res, err)
	}
	if cur, _, _ := st.Current(); cur.ID != first.Snapshot.ID {
		t.Fatal("older pulled tree published")
	}
	if _, err := os.Stat(filepath.Join(st.CurrentPath(), "app-misc/foo/foo-0.ebuild")); !os.IsNotExist(err) {
		t.Fatal("file of the refused tree is served")
	}
	if snaps, _ := st.List(); len(snaps) != 1 {
		t.Fatalf("snapshots %v, want only the first", snaps)
	}
}

func TestVerifyHook(t *testing.T) {
	needRsync(t)
	up := makeUpstream(t)
	st, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	sy := &Syncer{Store: st, Upstreams: []string{up}, Verify: func(_ context.Context, dir string) error {
		seen = append(seen, dir)
		b, err := os.ReadFile(filepath.Join(dir, "app-misc/foo/Manifest"))
		if err != nil {
			return err
		}
		if strings.Contains(string(b), "EVIL") {
			return errors.New("app-misc/foo/Manifest: bad digest")
		}
		return nil
	}}
	first, err := sy.Sync(context.Background())
	if err != nil || !first.Changed || len(seen) != 1 {
		t.Fatalf("first sync: %+v %v (verify calls %d)", first, err, len(seen))
	}
	if seen[0] == first.Snapshot.Path || !strings.Contains(seen[0], incomingPrefix) {
		t.Fatalf("verify ran on %s, want the incoming tree", seen[0])
	}
	writeFile(t, filepath.Join(up, "app-misc/foo/Manifest"), "EVIL\n")
	stamp(t, up, time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC))
	_, err = sy.Sync(context.Background())
	if err == nil || !strings.Contains(err.Error(), "app-misc/foo/Manifest: bad digest") || !strings.Contains(err.Error(), "not published") {
		t.Fatalf("tree failing verification: %v", err)
	}
	if cur, _, _ := st.Current(); cur.ID != first.Snapshot.ID {
		t.Fatal("tree failing verification published")
	}
	if b, _ := os.ReadFile(filepath.Join(st.CurrentPath(), "app-misc/foo/Manifest")); strings.Contains(string(b), "EVIL") {
		t.Fatal("refused file served")
	}
}

func TestProgress(t *testing.T) {
	needRsync(t)
	up := makeUpstream(t)
	st, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var last Progress
	calls := 0
	sy := &Syncer{Store: st, Upstreams: []string{up}, Progress: func(p Progress) { last = p; calls++ }}
	res, err := sy.Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// foo-1.ebuild, Manifest, timestamp.chk (distfiles excluded).
	var size int64
	for _, f := range []string{"app-misc/foo/foo-1.ebuild", "app-misc/foo/Manifest", TimestampFile} {
		fi, err := os.Stat(filepath.Join(up, f))
		if err != nil {
			t.Fatal(err)
		}
		size += fi.Size()
	}
	if calls != 3 || last.Files != 3 || last.Bytes != size || last.Upstream != up || res.Files != 3 || res.Bytes != size {
		t.Fatalf("progress %+v after %d calls, result files %d bytes %d; want 3 files, %d bytes", last, calls, res.Files, res.Bytes, size)
	}
}

// A reader in another process (flock(1) holding a shared lock on the
// snapshot) keeps the snapshot from being pruned; the next prune after it
// is gone removes it.
func TestPruneSkipsSnapshotPinnedByAnotherProcess(t *testing.T) {
	needRsync(t)
	flock := testutil.RequireTool(t, "flock")
	up := makeUpstream(t)
	st, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sy := &Syncer{Store: st, Upstreams: []string{up}, Keep: 1}
	first, err := sy.Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ready := filepath.Join(t.TempDir(), "ready")
	reader := exec.Command(flock, "--shared", first.Snapshot.Path, "sh", "-c", "touch "+ready+"; exec sleep 60")
	// Its own process group: flock and the command holding the lock
	// with it are killed together, by the group's id.
	reader.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := reader.Start(); err != nil {
		t.Fatal(err)
	}
	killReader := func() { syscall.Kill(-reader.Process.Pid, syscall.SIGKILL) }
	waited := make(chan struct{})
	go func() { reader.Wait(); close(waited) }()
	t.Cleanup(func() { killReader(); <-waited })
	for i := 0; ; i++ {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if i > 500 {
			t.Fatal("flock reader did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}

	stamp(t, up, time.Date(2026, 11, 1, 11, 0, 0, 0, time.UTC))
	second, err := sy.Sync(context.Background())
	if err != nil || !second.Changed {
		t.Fatalf("second sync: %+v %v", second, err)
	}
	if len(second.Held) != 1 || second.Held[0] != first.Snapshot.ID || len(second.Pruned) != 0 {
		t.Fatalf("prune with a pinned snapshot: %+v", second)
	}
	if _, err := os.Stat(filepath.Join(first.Snapshot.Path, TimestampFile)); err != nil {
		t.Fatal("pinned snapshot removed:", err)
	}
	killReader()
	<-waited
	// The group's last process may outlive the wait a moment.
	var pr PruneResult
	for i := 0; i < 200; i++ {
		if pr, err = st.Prune(1); err != nil || len(pr.Held) == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil || len(pr.Removed) != 1 || pr.Removed[0] != first.Snapshot.ID {
		t.Fatalf("prune after the reader left: %+v %v", pr, err)
	}
	if _, err := os.Stat(first.Snapshot.Path); !os.IsNotExist(err) {
		t.Fatal("snapshot not removed after its reader left")
	}
}

// Only one pull at a time runs on a store, across processes.
func TestOnePullAtATime(t *testing.T) {
	st, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l, err := dirlock.TryExclusive(st.Dir())
	if err != nil {
		t.Fatal(err)
	}
	sy := &Syncer{Store: st, Upstreams: []string{t.TempDir()}}
	if _, err := sy.Sync(context.Background()); !errors.Is(err, ErrBusy) {
		t.Fatalf("sync while another pull holds the store: %v", err)
	}
	if _, err := st.Prune(1); !errors.Is(err, ErrBusy) {
		t.Fatalf("prune while another pull holds the store: %v", err)
	}
	// Open does not clean up under a running pull.
	in, err := st.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(st.Dir()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(in.Path); err != nil {
		t.Fatal("Open removed the incoming tree of a running pull:", err)
	}
	l.Close()
}

// helperEnv makes the test binary act as a pulling process (see
// helperPull) that a test kills with SIGKILL.
const helperEnv = "LANMIRROR_TREE_TEST_HELPER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(helperEnv); spec != "" {
		os.Exit(helperPull(spec))
	}
	os.Exit(m.Run())
}

// helperPull runs in a child started by TestKillDuringPublishAndPull: it
// pulls into the store and stops at the point named by spec (touching a
// file to say so) until it is killed.
func helperPull(spec string) int {
	var store, up, stage, ready string
	fmt.Sscanf(spec, "%s %s %s %s", &store, &up, &stage, &ready)
	st, err := Open(store)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	park := func() {
		os.WriteFile(ready, nil, 0o644)
		time.Sleep(time.Minute)
		os.Exit(3)
	}
	sy := &Syncer{Store: st, Upstreams: []string{up}}
	switch stage {
	case "publish":
		sy.beforeSwap = park
	case "pull":
		sy.Progress = func(Progress) { park() }
	}
	_, err = sy.Sync(context.Background())
	fmt.Fprintln(os.Stderr, "helper pull ended:", err)
	return 4
}

func killHelperAt(t *testing.T, store, up, stage string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ready := filepath.Join(t.TempDir(), "ready")
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"="+strings.Join([]string{store, up, stage, ready}, " "))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	for i := 0; ; i++ {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		select {
		case <-exited:
			t.Fatalf("helper exited before reaching %s:\n%s", stage, out.String())
		default:
		}
		if i > 3000 {
			cmd.Process.Kill()
			t.Fatalf("helper did not reach %s", stage)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
}

// kill -9 while publishing (the new tree moved into place, "current" not
// switched yet) or while pulling leaves the published snapshot intact;
// the next pull cleans up and publishes.
func TestKillDuringPublishAndPull(t *testing.T) {
	needRsync(t)
	for _, stage := range []string{"publish", "pull"} {
		t.Run(stage, func(t *testing.T) {
			up := makeUpstream(t)
			dir := t.TempDir()
			st, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			sy := &Syncer{Store: st, Upstreams: []string{up}}
			first, err := sy.Sync(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			want := readTree(t, first.Snapshot.Path)
			writeFile(t, filepath.Join(up, "app-misc/bar/bar-1.ebuild"), "EAPI=8\n# new\n")
			stamp(t, up, time.Date(2026, 11, 1, 11, 0, 0, 0, time.UTC))

			killHelperAt(t, dir, up, stage)

			cur, ok, err := st.Current()
			if err != nil || !ok || cur.ID != first.Snapshot.ID {
				t.Fatalf("current after kill -9: %v %v %v", cur, ok, err)
			}
			got := readTree(t, st.CurrentPath()+"/")
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("published tree changed by the killed pull:\n got %v\nwant %v", got, want)
			}
			ents, _ := os.ReadDir(filepath.Join(dir, snapshotsDir))
			if len(ents) < 2 {
				t.Fatalf("the killed pull left nothing behind (%v): the test did not stop it mid-way", ents)
			}

			log, logs := lineLog()
			sy.Log = log
			res, err := sy.Sync(context.Background())
			if err != nil || !res.Changed {
				t.Fatalf("pull after kill: %+v %v", res, err)
			}
			if len(res.Cleaned) == 0 || !strings.Contains(logs.String(), "cleaned=") {
				t.Fatalf("leftovers not reported cleaned: %+v\n%s", res, logs.String())
			}
			ents, _ = os.ReadDir(filepath.Join(dir, snapshotsDir))
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			if len(names) != 2 || names[0] != first.Snapshot.ID || names[1] != res.Snapshot.ID {
				t.Fatalf("snapshots after the next pull: %v, want %s and %s", names, first.Snapshot.ID, res.Snapshot.ID)
			}
			if _, err := os.Stat(filepath.Join(st.CurrentPath(), "app-misc/bar/bar-1.ebuild")); err != nil {
				t.Fatal("new tree not published:", err)
			}
		})
	}
}
