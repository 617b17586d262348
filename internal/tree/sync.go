package tree

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lanmirror/lanmirror/internal/metrics"
)

// TimestampFile is the file a Gentoo tree carries to say when it was made;
// Portage probes it before a full sync, and so does the Syncer.
const TimestampFile = "metadata/timestamp.chk"

// TimestampLayout is the format of TimestampFile.
const TimestampLayout = "Mon, 02 Jan 2006 15:04:05 -0700"

// DefaultExcludes are left out of the mirrored tree, as Portage leaves them out.
var DefaultExcludes = []string{"/distfiles", "/local", "/packages", "/.git"}

// Defaults of the Syncer's failover and retry schedule.
const (
	// DefaultBackoff is the wait before trying the next upstream after
	// one failed; it doubles with each further failure of the same pull.
	DefaultBackoff = time.Second
	// DefaultMaxBackoff caps that wait.
	DefaultMaxBackoff = 30 * time.Second
	// retryFirst is how soon Run retries a pull that failed on every
	// upstream (doubled per consecutive failure, capped by the interval).
	retryFirst = time.Minute
	// pruneRetry is how soon Run retries removing snapshots that readers
	// still pinned (capped by the interval).
	pruneRetry = time.Minute
)

// Syncer pulls the tree from upstream rsync mirrors into a new snapshot and
// publishes it. It runs the system's rsync client.
type Syncer struct {
	Store *Store
	// Upstreams are rsync URLs (rsync://host/gentoo-portage/) or local
	// paths, tried in this order until one gives a good tree.
	Upstreams []string
	// RsyncPath is the rsync client to run (default "rsync").
	RsyncPath string
	// Excludes default to DefaultExcludes.
	Excludes []string
	// ExtraArgs are appended to the rsync command line.
	ExtraArgs []string
	// Timeout is rsync's --timeout (default 180s).
	Timeout time.Duration
	// Keep is how many snapshots to keep (default 3).
	Keep int
	// Backoff and MaxBackoff: the wait before trying the next upstream
	// after a failure, doubled per failure up to MaxBackoff (defaults
	// DefaultBackoff, DefaultMaxBackoff).
	Backoff, MaxBackoff time.Duration
	Log                 *slog.Logger
	// Verify, if set, checks the pulled tree in dir (the incoming snapshot,
	// complete but not yet published) before it is published. An error
	// keeps the published snapshot and discards the pulled one; the next
	// upstream is tried, and Sync's error wraps ErrVerify and Verify's
	// error.
	Verify func(ctx context.Context, dir string) error
	// Progress, if set, is called as files arrive during a pull.
	Progress func(Progress)
	// OnPublish, if set, is called after a new snapshot is published.
	OnPublish func(Snapshot)

	// beforeSwap is a test hook run between moving a new tree into place
	// and switching "current".
	beforeSwap func()
}

// Progress is how far a pull is.
type Progress struct {
	Upstream string
	Files    int   // regular files received so far
	Bytes    int64 // their size
}

// Result says what a Sync did.
type Result struct {
	// Snapshot is the published snapshot after the sync.
	Snapshot Snapshot
	// Changed is false when upstream had the same timestamp and nothing
	// was published.
	Changed bool
	// Upstream is the upstream that gave the tree (or said it was
	// unchanged).
	Upstream string
	// Files and Bytes count the regular files received and their size.
	Files int
	Bytes int64
	// Pruned are the snapshots removed; Held those due for removal but
	// pinned by readers (removed by a later Sync or Store.Prune).
	Pruned, Held []string
	// Cleaned are the leftovers of interrupted pulls removed first.
	Cleaned []string
	// Verified is how long Verify took on the published tree.
	Verified time.Duration
}

// ErrUpstreamOutdated is returned when the upstream tree is older than the
// published one; the published tree is kept.
var ErrUpstreamOutdated = errors.New("upstream tree is older than the local one")

// ErrVerify is wrapped by Sync's error when Syncer.Verify refused the pulled
// tree.
var ErrVerify = errors.New("pulled tree failed verification, not published")

func (sy *Syncer) rsync() string {
	if sy.RsyncPath != "" {
		return sy.RsyncPath
	}
	return "rsync"
}

func (sy *Syncer) log() *slog.Logger {
	if sy.Log != nil {
		return sy.Log
	}
	return slog.Default()
}

func source(u string) string {
	if !strings.HasSuffix(u, "/") {
		u += "/"
	}
	return u
}

// Sync brings the published tree up to date with the first upstream that
// answers. For each upstream in turn it compares the upstream timestamp
// with the published one and copies nothing when they match; otherwise it
// writes a new snapshot (unchanged files hard linked to the previous one),
// checks that the pulled tree's timestamp is not older than the published
// one, runs Verify, and publishes it. A failed upstream is followed by the
// next one after a backoff. Sync logs exactly one line.
func (sy *Syncer) Sync(ctx context.Context) (res Result, err error) {
	start := time.Now()
	res, err = sy.sync(ctx)
	result := "unchanged"
	switch {
	case err != nil:
		result = "failed"
		metrics.TreeSyncs.WithLabelValues("error").Inc()
	case res.Changed:
		result = "published"
		metrics.TreeSyncs.WithLabelValues("published").Inc()
		metrics.TreePublished.SetToCurrentTime()
	default:
		metrics.TreeSyncs.WithLabelValues("unchanged").Inc()
	}
	up := res.Upstream
	if up == "" {
		up = strings.Join(sy.Upstreams, " ")
	}
	attrs := []any{"upstream", up, "result", result, "snapshot", res.Snapshot.ID,
		"files", res.Files, "bytes", res.Bytes, "duration", time.Since(start).Round(time.Millisecond)}
	if res.Verified > 0 {
		attrs = append(attrs, "verified", res.Verified.Round(time.Millisecond))
	}
	if len(res.Pruned) > 0 {
		attrs = append(attrs, "pruned", strings.Join(res.Pruned, " "))
	}
	if len(res.Held) > 0 {
		attrs = append(attrs, "held", strings.Join(res.Held, " "))
	}
	if len(res.Cleaned) > 0 {
		attrs = append(attrs, "cleaned", strings.Join(res.Cleaned, " "))
	}
	level := slog.LevelInfo
	if err != nil {
		level = slog.LevelError
		attrs = append(attrs, "err", err.Error())
	}
	sy.log().Log(context.Background(), level, "tree pull", attrs...)
	return res, err
}

func (sy *Syncer) sync(ctx context.Context) (Result, error) {
	if len(sy.Upstreams) == 0 {
		return Result{}, errors.New("tree: no upstream")
	}
	st := sy.Store
	unlock, err := st.lock()
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	cleaned, err := st.cleanup()
	st.mu.Lock()
	cleaned = append(st.opened, cleaned...)
	st.opened = nil
	st.mu.Unlock()
	if err != nil {
		return Result{Cleaned: cleaned}, err
	}
	cur, haveCur, err := st.Current()
	if err != nil {
		return Result{Cleaned: cleaned}, err
	}
	var local time.Time
	haveLocal := false
	if haveCur {
		local, err = ReadTimestamp(filepath.Join(cur.Path, TimestampFile))
		haveLocal = err == nil
	}
	wait := sy.Backoff
	if wait <= 0 {
		wait = DefaultBackoff
	}
	maxWait := sy.MaxBackoff
	if maxWait <= 0 {
		maxWait = DefaultMaxBackoff
	}
	var errs []error
	for i, up := range sy.Upstreams {
		if i > 0 {
			sy.log().Debug("tree: trying the next upstream", "upstream", up, "after", wait)
			select {
			case <-ctx.Done():
				return Result{Snapshot: cur, Cleaned: cleaned}, ctx.Err()
			case <-time.After(wait):
			}
			wait = min(2*wait, maxWait)
		}
		res, err := sy.pull(ctx, up, cur, haveCur, local, haveLocal)
		res.Cleaned = cleaned
		if err != nil {
			if ctx.Err() != nil {
				// Stopped: say so (errors.Is(err, context.Canceled)), with
				// what the interrupted pull reported.
				return Result{Snapshot: cur, Cleaned: cleaned}, fmt.Errorf("tree: pull from %s stopped: %w (%v)", up, ctx.Err(), err)
			}
			sy.log().Debug("tree: upstream failed", "upstream", up, "err", err)
			errs = append(errs, err)
			continue
		}
		res.Upstream = up
		keep := sy.Keep
		if keep == 0 {
			keep = 3
		}
		pr, err := st.prune(keep)
		res.Pruned, res.Held = pr.Removed, pr.Held
		if err != nil {
			// Published all the same; the next pull prunes again.
			sy.log().Warn("tree: prune failed", "err", err)
		}
		return res, nil
	}
	if len(errs) == 1 {
		return Result{Snapshot: cur, Cleaned: cleaned}, errs[0]
	}
	return Result{Snapshot: cur, Cleaned: cleaned}, fmt.Errorf("tree: all %d upstreams failed: %w", len(errs), errors.Join(errs...))
}

// pull brings the tree from one upstream.
func (sy *Syncer) pull(ctx context.Context, up string, cur Snapshot, haveCur bool, local time.Time, haveLocal bool) (Result, error) {
	if haveLocal {
		probed, err := sy.probeTimestamp(ctx, up)
		if err != nil {
			sy.log().Debug("tree: timestamp probe failed, doing a full pull", "upstream", up, "err", err)
		} else {
			switch {
			case probed.Equal(local):
				return Result{Snapshot: cur}, nil
			case probed.Before(local):
				return Result{}, fmt.Errorf("tree: %s: %w (upstream %s, local %s)", up, ErrUpstreamOutdated, probed.Format(time.RFC3339), local.Format(time.RFC3339))
			}
		}
	}

	in, err := sy.Store.Begin()
	if err != nil {
		return Result{}, err
	}
	defer in.Abort()
	args := sy.baseArgs(up)
	args = append(args, "--delete", "--out-format="+itemPrefix+"%i %l %n")
	if haveCur {
		args = append(args, "--link-dest="+cur.Path)
	}
	args = append(args, source(up), in.Path+"/")
	res := Result{}
	out, err := sy.runPull(ctx, up, args, &res)
	if err != nil {
		return res, fmt.Errorf("tree: pull from %s: %w: %s", up, err, out)
	}
	pulled, err := ReadTimestamp(filepath.Join(in.Path, TimestampFile))
	if errors.Is(err, os.ErrNotExist) {
		return res, fmt.Errorf("tree: upstream %s is not a Gentoo tree (no %s)", up, TimestampFile)
	}
	if err != nil {
		return res, fmt.Errorf("tree: upstream %s: %w", up, err)
	}
	if haveLocal {
		// What was pulled counts, not the probe: the upstream may have
		// changed (or lied) in between.
		switch {
		case pulled.Before(local):
			return res, fmt.Errorf("tree: %s: %w (pulled tree %s, local %s)", up, ErrUpstreamOutdated, pulled.Format(time.RFC3339), local.Format(time.RFC3339))
		case pulled.Equal(local):
			res.Snapshot = cur
			return res, nil
		}
	}
	if sy.Verify != nil {
		vstart := time.Now()
		if err := sy.Verify(ctx, in.Path); err != nil {
			return res, fmt.Errorf("tree: %w (upstream %s): %w", ErrVerify, up, err)
		}
		res.Verified = time.Since(vstart)
	}
	in.beforeSwap = sy.beforeSwap
	snap, err := in.Commit()
	if err != nil {
		return res, err
	}
	res.Snapshot, res.Changed = snap, true
	if sy.OnPublish != nil {
		sy.OnPublish(snap)
	}
	return res, nil
}

func (sy *Syncer) baseArgs(up string) []string {
	t := sy.Timeout
	if t == 0 {
		t = 180 * time.Second
	}
	args := []string{"--recursive", "--links", "--safe-links", "--perms", "--times", "--omit-dir-times",
		"--whole-file", fmt.Sprintf("--timeout=%d", int(t.Seconds())), "--no-motd"}
	ex := sy.Excludes
	if ex == nil {
		ex = DefaultExcludes
	}
	for _, e := range ex {
		args = append(args, "--exclude="+e)
	}
	if strings.HasPrefix(up, "rsync://") || strings.Contains(up, "::") {
		args = append(args, "--compress")
	}
	return append(args, sy.ExtraArgs...)
}

func (sy *Syncer) probeTimestamp(ctx context.Context, up string) (time.Time, error) {
	dir, err := os.MkdirTemp(sy.Store.Dir(), probePrefix)
	if err != nil {
		return time.Time{}, fmt.Errorf("tree: probe: %w", err)
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	args := append(sy.baseArgs(up), source(up)+TimestampFile, dir+"/")
	cmd := exec.CommandContext(ctx, sy.rsync(), args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = 5 * time.Second
	dieWithParent(cmd)
	if err := cmd.Run(); err != nil {
		return time.Time{}, fmt.Errorf("%w: %s", err, clip(out.String()))
	}
	return ReadTimestamp(filepath.Join(dir, filepath.Base(TimestampFile)))
}

// itemPrefix marks rsync's per-file output lines (--out-format).
const itemPrefix = "lanmirror-item: "

// runPull runs rsync for a pull, counting the received files in res and
// reporting progress; it returns the tail of rsync's other output.
func (sy *Syncer) runPull(ctx context.Context, up string, args []string, res *Result) (string, error) {
	cmd := exec.CommandContext(ctx, sy.rsync(), args...)
	var mu sync.Mutex
	var other bytes.Buffer
	keep := func(b []byte) {
		mu.Lock()
		defer mu.Unlock()
		other.Write(b)
		if other.Len() > 8192 {
			rest := append([]byte(nil), other.Bytes()[other.Len()-4096:]...)
			other.Reset()
			other.Write(rest)
		}
	}
	cmd.Stderr = writerFunc(func(b []byte) (int, error) { keep(b); return len(b), nil })
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	cmd.WaitDelay = 5 * time.Second
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return "", err
	}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		item, ok := strings.CutPrefix(line, itemPrefix)
		if !ok {
			keep([]byte(line + "\n"))
			continue
		}
		// "%i %l %n": a received regular file's itemization starts ">f".
		flags, rest, _ := strings.Cut(item, " ")
		size, _, _ := strings.Cut(rest, " ")
		if strings.HasPrefix(flags, ">f") {
			n, _ := strconv.ParseInt(size, 10, 64)
			res.Files++
			res.Bytes += n
			if sy.Progress != nil {
				sy.Progress(Progress{Upstream: up, Files: res.Files, Bytes: res.Bytes})
			}
		}
	}
	_, _ = io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	mu.Lock()
	defer mu.Unlock()
	return clip(other.String()), err
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// clip trims rsync's output for an error message.
func clip(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 2000 {
		s = "..." + s[len(s)-2000:]
	}
	return s
}

// ReadTimestamp parses a tree's metadata/timestamp.chk.
func ReadTimestamp(path string) (time.Time, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}, fmt.Errorf("tree: read timestamp: %w", err)
	}
	t, err := time.Parse(TimestampLayout, strings.TrimSpace(string(b)))
	if err != nil {
		return time.Time{}, fmt.Errorf("tree: parse timestamp %s: %w", path, err)
	}
	return t, nil
}

// Run pulls at start, then every interval, until ctx is cancelled. A pull
// that fails on every upstream keeps the published snapshot and is retried
// sooner (after a minute, doubling per failure, at most interval);
// snapshots that readers still pinned when they were due for removal are
// pruned again a minute later (no pull for that).
func (sy *Syncer) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = time.Hour
	}
	keep := sy.Keep
	if keep == 0 {
		keep = 3
	}
	nextPull := time.Now()
	var nextPrune time.Time // zero: nothing held
	fails := 0
	for {
		wake := nextPull
		if !nextPrune.IsZero() && nextPrune.Before(wake) {
			wake = nextPrune
		}
		t := time.NewTimer(time.Until(wake))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if time.Now().Before(nextPull) {
			pr, err := sy.Store.Prune(keep)
			switch {
			case err != nil:
				sy.log().Debug("tree: prune retry", "err", err)
			case len(pr.Removed) > 0:
				sy.log().Info("tree: pruned snapshots no longer read", "pruned", strings.Join(pr.Removed, " "))
			}
			nextPrune = time.Time{}
			if err != nil || len(pr.Held) > 0 {
				nextPrune = time.Now().Add(min(pruneRetry, interval))
			}
			continue
		}
		res, err := sy.Sync(ctx)
		if ctx.Err() != nil {
			return
		}
		nextPrune = time.Time{}
		if err != nil {
			fails++
			nextPull = time.Now().Add(min(retryFirst<<min(fails-1, 10), interval))
			continue
		}
		fails = 0
		nextPull = time.Now().Add(interval)
		if len(res.Held) > 0 {
			nextPrune = time.Now().Add(min(pruneRetry, interval))
		}
	}
}
