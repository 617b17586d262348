package tree

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// Syncer pulls the tree from an upstream rsync mirror into a new snapshot and
// publishes it. It runs the system's rsync client.
type Syncer struct {
	Store *Store
	// Upstream is an rsync URL (rsync://host/gentoo-portage/) or a local path.
	Upstream string
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
	Log  *slog.Logger
	// OnPublish, if set, is called after a new snapshot is published.
	OnPublish func(Snapshot)
	// Verify, if set, checks the pulled tree in dir (the incoming snapshot,
	// complete but not yet published) before it is published. An error
	// keeps the published snapshot and discards the pulled one; Sync then
	// returns an error wrapping ErrVerify and Verify's error.
	Verify func(ctx context.Context, dir string) error
}

// Result says what a Sync did.
type Result struct {
	Snapshot Snapshot
	// Changed is false when upstream had the same timestamp and nothing was copied.
	Changed bool
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

func (sy *Syncer) source() string {
	u := sy.Upstream
	if !strings.HasSuffix(u, "/") {
		u += "/"
	}
	return u
}

// Sync brings the published tree up to date with upstream. It first compares
// the upstream timestamp with the published one and copies nothing when they
// match; otherwise it writes a new snapshot (unchanged files hard linked to
// the previous one) and publishes it only when the transfer completed.
func (sy *Syncer) Sync(ctx context.Context) (res Result, err error) {
	defer func() {
		switch {
		case err != nil:
			metrics.TreeSyncs.WithLabelValues("error").Inc()
		case res.Changed:
			metrics.TreeSyncs.WithLabelValues("published").Inc()
			metrics.TreePublished.SetToCurrentTime()
		default:
			metrics.TreeSyncs.WithLabelValues("unchanged").Inc()
		}
	}()
	cur, haveCur, err := sy.Store.Current()
	if err != nil {
		return Result{}, err
	}
	if haveCur {
		up, err := sy.probeTimestamp(ctx)
		if err != nil {
			sy.log().Warn("tree: timestamp probe failed, doing a full sync", "upstream", sy.Upstream, "err", err)
		} else if local, err := ReadTimestamp(filepath.Join(cur.Path, TimestampFile)); err == nil {
			switch {
			case up.Equal(local):
				return Result{Snapshot: cur}, nil
			case up.Before(local):
				return Result{Snapshot: cur}, fmt.Errorf("tree: %w (upstream %s, local %s)", ErrUpstreamOutdated, up.Format(time.RFC3339), local.Format(time.RFC3339))
			}
		}
	}

	in, err := sy.Store.Begin()
	if err != nil {
		return Result{}, err
	}
	defer in.Abort()
	args := sy.baseArgs()
	args = append(args, "--delete")
	if haveCur {
		args = append(args, "--link-dest="+cur.Path)
	}
	args = append(args, sy.source(), in.Path+"/")
	start := time.Now()
	if out, err := sy.run(ctx, args); err != nil {
		return Result{}, fmt.Errorf("tree: sync from %s: %w: %s", sy.Upstream, err, out)
	}
	if _, err := os.Lstat(filepath.Join(in.Path, TimestampFile)); err != nil {
		return Result{}, fmt.Errorf("tree: upstream %s is not a Gentoo tree (no %s)", sy.Upstream, TimestampFile)
	}
	if sy.Verify != nil {
		vstart := time.Now()
		if err := sy.Verify(ctx, in.Path); err != nil {
			return Result{}, fmt.Errorf("tree: %w (upstream %s): %w", ErrVerify, sy.Upstream, err)
		}
		sy.log().Info("tree: pulled tree verified", "upstream", sy.Upstream, "duration", time.Since(vstart).Round(time.Millisecond))
	}
	snap, err := in.Commit()
	if err != nil {
		return Result{}, err
	}
	sy.log().Info("tree: published snapshot", "id", snap.ID, "upstream", sy.Upstream, "duration", time.Since(start).Round(time.Millisecond))
	if sy.OnPublish != nil {
		sy.OnPublish(snap)
	}
	keep := sy.Keep
	if keep == 0 {
		keep = 3
	}
	if removed, err := sy.Store.Prune(keep); err != nil {
		sy.log().Warn("tree: prune failed", "err", err)
	} else if len(removed) > 0 {
		sy.log().Info("tree: pruned snapshots", "ids", removed)
	}
	return Result{Snapshot: snap, Changed: true}, nil
}

func (sy *Syncer) baseArgs() []string {
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
	if strings.HasPrefix(sy.Upstream, "rsync://") || strings.Contains(sy.Upstream, "::") {
		args = append(args, "--compress")
	}
	return append(args, sy.ExtraArgs...)
}

func (sy *Syncer) probeTimestamp(ctx context.Context) (time.Time, error) {
	dir, err := os.MkdirTemp(sy.Store.Dir(), ".probe-")
	if err != nil {
		return time.Time{}, fmt.Errorf("tree: probe: %w", err)
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	args := append(sy.baseArgs(), sy.source()+TimestampFile, dir+"/")
	if out, err := sy.run(ctx, args); err != nil {
		return time.Time{}, fmt.Errorf("%w: %s", err, out)
	}
	return ReadTimestamp(filepath.Join(dir, filepath.Base(TimestampFile)))
}

func (sy *Syncer) run(ctx context.Context, args []string) (string, error) {
	cmd := exec.CommandContext(ctx, sy.rsync(), args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	s := strings.TrimSpace(out.String())
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	return s, err
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

// Run syncs at start when no snapshot exists yet, then every interval, until
// ctx is cancelled. Failures are logged and retried at the next interval.
func (sy *Syncer) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = time.Hour
	}
	next := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(next):
		}
		if _, err := sy.Sync(ctx); err != nil && ctx.Err() == nil {
			sy.log().Error("tree: sync failed; keeping the published snapshot", "upstream", sy.Upstream, "err", err)
		}
		next = interval
	}
}
