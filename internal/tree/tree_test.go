package tree

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/testutil"
)

func needRsync(t *testing.T) {
	t.Helper()
	testutil.RequireTool(t, "rsync")
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// stamp writes the tree's timestamp.chk with its mtime at that time, as
// a real tree has it (rsync's quick check compares size and mtime, and
// every timestamp.chk has the same size).
func stamp(t *testing.T, root string, when time.Time) {
	p := filepath.Join(root, TimestampFile)
	writeFile(t, p, when.UTC().Format(TimestampLayout)+"\n")
	if err := os.Chtimes(p, when, when); err != nil {
		t.Fatal(err)
	}
}

func makeUpstream(t *testing.T) string {
	up := t.TempDir()
	writeFile(t, filepath.Join(up, "app-misc/foo/foo-1.ebuild"), "EAPI=8\n")
	writeFile(t, filepath.Join(up, "app-misc/foo/Manifest"), "DIST foo-1.tar.gz 3 BLAKE2B aa SHA512 bb\n")
	writeFile(t, filepath.Join(up, "distfiles/junk.tar.gz"), "not mirrored")
	if err := os.Symlink("foo", filepath.Join(up, "app-misc", "link")); err != nil {
		t.Fatal(err)
	}
	stamp(t, up, time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC))
	return up
}

func readTree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out[rel] = "-> " + l
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func inode(t *testing.T, p string) uint64 {
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func TestSyncPublishesAtomicSnapshots(t *testing.T) {
	needRsync(t)
	up := makeUpstream(t)
	st, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var published []Snapshot
	sy := &Syncer{Store: st, Upstreams: []string{up}, OnPublish: func(s Snapshot) { published = append(published, s) }}
	ctx := context.Background()

	res, err := sy.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || len(published) != 1 {
		t.Fatalf("first sync: changed=%v published=%d", res.Changed, len(published))
	}
	got := readTree(t, st.CurrentPath()+"/")
	want := readTree(t, up)
	delete(want, "distfiles/junk.tar.gz")
	if len(got) != len(want) {
		t.Fatalf("tree differs:\n got %v\nwant %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s: got %q want %q", k, got[k], v)
		}
	}

	// Same timestamp upstream: nothing is copied, no new snapshot.
	res2, err := sy.Sync(ctx)
	if err != nil || res2.Changed || res2.Snapshot.ID != res.Snapshot.ID {
		t.Fatalf("no-op sync: %+v %v", res2, err)
	}

	// Upstream changes: a new snapshot, unchanged files shared by hard link,
	// the old snapshot untouched.
	old := res.Snapshot
	writeFile(t, filepath.Join(up, "app-misc/foo/foo-2.ebuild"), "EAPI=8\n# v2\n")
	os.Remove(filepath.Join(up, "app-misc/foo/foo-1.ebuild"))
	stamp(t, up, time.Date(2026, 11, 1, 11, 0, 0, 0, time.UTC))
	res3, err := sy.Sync(ctx)
	if err != nil || !res3.Changed {
		t.Fatalf("update sync: %+v %v", res3, err)
	}
	if _, err := os.Stat(filepath.Join(st.CurrentPath(), "app-misc/foo/foo-2.ebuild")); err != nil {
		t.Fatal("new file not published:", err)
	}
	if _, err := os.Stat(filepath.Join(st.CurrentPath(), "app-misc/foo/foo-1.ebuild")); !os.IsNotExist(err) {
		t.Fatal("removed file still published")
	}
	if _, err := os.Stat(filepath.Join(old.Path, "app-misc/foo/foo-1.ebuild")); err != nil {
		t.Fatal("old snapshot was modified:", err)
	}
	if inode(t, filepath.Join(old.Path, "app-misc/foo/Manifest")) != inode(t, filepath.Join(res3.Snapshot.Path, "app-misc/foo/Manifest")) {
		t.Error("unchanged file not hard linked between snapshots")
	}

	// An older upstream is refused and the published tree kept.
	stamp(t, up, time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC))
	if _, err := sy.Sync(ctx); !errors.Is(err, ErrUpstreamOutdated) {
		t.Fatalf("outdated upstream: err=%v", err)
	}
	if cur, _, _ := st.Current(); cur.ID != res3.Snapshot.ID {
		t.Fatal("current changed after refused sync")
	}
}

func TestFailedSyncKeepsPublishedTree(t *testing.T) {
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
	// A broken upstream (gone) fails without touching the published tree
	// and leaves no incoming directory behind.
	sy.Upstreams = []string{filepath.Join(t.TempDir(), "missing")}
	if _, err := sy.Sync(context.Background()); err == nil {
		t.Fatal("sync from a missing upstream succeeded")
	}
	// An upstream that is not a Gentoo tree is refused too.
	notTree := t.TempDir()
	writeFile(t, filepath.Join(notTree, "x"), "x")
	sy.Upstreams = []string{notTree}
	if _, err := sy.Sync(context.Background()); err == nil {
		t.Fatal("sync from a non-tree upstream succeeded")
	}
	cur, ok, err := st.Current()
	if err != nil || !ok || cur.ID != first.Snapshot.ID {
		t.Fatalf("current changed: %v %v %v", cur, ok, err)
	}
	ents, _ := os.ReadDir(filepath.Join(st.Dir(), snapshotsDir))
	for _, e := range ents {
		if e.Name() != first.Snapshot.ID {
			t.Errorf("leftover %s", e.Name())
		}
	}
}

func TestOpenRemovesInterruptedSync(t *testing.T) {
	dir := t.TempDir()
	st, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	in, err := st.Begin()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(in.Path, "half"), "x")
	// The process dies here; the next Open cleans up.
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(in.Path); !os.IsNotExist(err) {
		t.Fatal("interrupted sync left behind")
	}
	if _, ok, _ := st.Current(); ok {
		t.Fatal("half sync published")
	}
}

func TestPruneKeepsPinnedAndCurrent(t *testing.T) {
	st, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var snaps []Snapshot
	var release func()
	for i := 0; i < 5; i++ {
		in, err := st.Begin()
		if err != nil {
			t.Fatal(err)
		}
		s, err := in.Commit()
		if err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, s)
		if i == 1 {
			// A client is reading snapshot 1.
			_, release, err = st.Acquire()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	pr, err := st.Prune(2)
	if err != nil {
		t.Fatal(err)
	}
	if len(pr.Removed) != 2 || pr.Removed[0] != snaps[0].ID || pr.Removed[1] != snaps[2].ID {
		t.Fatalf("removed %v, want snapshots 0 and 2", pr.Removed)
	}
	if len(pr.Held) != 1 || pr.Held[0] != snaps[1].ID {
		t.Fatalf("held %v, want snapshot 1", pr.Held)
	}
	release()
	pr, err = st.Prune(2)
	if err != nil || len(pr.Removed) != 1 || pr.Removed[0] != snaps[1].ID || len(pr.Held) != 0 {
		t.Fatalf("after release %+v %v", pr, err)
	}
	cur, _, _ := st.Current()
	if cur.ID != snaps[4].ID {
		t.Fatal("current is not the newest")
	}
}

func TestVerifyRefusalKeepsPublishedTree(t *testing.T) {
	needRsync(t)
	up := makeUpstream(t)
	st, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	refuse := errors.New("app-misc/foo/foo-1.ebuild: BLAKE2B mismatch")
	verify := func(ctx context.Context, dir string) error {
		// The hook sees the complete pulled tree before it is published.
		b, err := os.ReadFile(filepath.Join(dir, "app-misc/foo/foo-1.ebuild"))
		if err != nil {
			return err
		}
		seen = append(seen, string(b))
		if string(b) != "EAPI=8\n" {
			return refuse
		}
		return nil
	}
	sy := &Syncer{Store: st, Upstreams: []string{up}, Verify: verify}
	first, err := sy.Sync(context.Background())
	if err != nil || !first.Changed {
		t.Fatalf("first sync: %+v %v", first, err)
	}
	writeFile(t, filepath.Join(up, "app-misc/foo/foo-1.ebuild"), "EAPI=8\n# tampered\n")
	stamp(t, up, time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC))
	_, err = sy.Sync(context.Background())
	if !errors.Is(err, ErrVerify) || !errors.Is(err, refuse) {
		t.Fatalf("refused tree: err=%v, want ErrVerify wrapping the hook's error", err)
	}
	if want := "app-misc/foo/foo-1.ebuild: BLAKE2B mismatch"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
	if len(seen) != 2 || seen[1] != "EAPI=8\n# tampered\n" {
		t.Fatalf("hook saw %q", seen)
	}
	cur, ok, err := st.Current()
	if err != nil || !ok || cur.ID != first.Snapshot.ID {
		t.Fatalf("current changed: %v %v %v", cur, ok, err)
	}
	if b, err := os.ReadFile(filepath.Join(st.CurrentPath(), "app-misc/foo/foo-1.ebuild")); err != nil || string(b) != "EAPI=8\n" {
		t.Fatalf("published file: %q %v", b, err)
	}
	ents, _ := os.ReadDir(filepath.Join(st.Dir(), snapshotsDir))
	for _, e := range ents {
		if e.Name() != first.Snapshot.ID {
			t.Errorf("refused tree left behind as %s", e.Name())
		}
	}
}
