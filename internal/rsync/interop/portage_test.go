package interop

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/testtree"
)

// treeSettle is how long tests wait after changing a tree lanmirror serves
// before syncing again. lanmirror shares one scan per module and checks it
// for changes (directory mtimes) at most every 2 s, so a client that comes
// sooner may be served the previous scan; this is by design.
const treeSettle = 2100 * time.Millisecond

// settle waits treeSettle after a change of the served tree (stock rsyncd
// walks the tree for every client: no wait).
func settle(kind serverKind) {
	if kind == kindLanmirror {
		time.Sleep(treeSettle)
	}
}

// matrixFiles is the tree size of the protocol/compression matrix.
const matrixFiles = 600

// newTree generates a tree in a fresh temporary directory.
func newTree(t *testing.T, seed uint64, files int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tree")
	if _, err := testtree.Generate(dir, testtree.Options{Seed: seed, Files: files, PortageExcluded: true}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// regularFiles counts the regular files a client with options o copies.
func regularFiles(t *testing.T, src string, o cmpOpts) int {
	t.Helper()
	entries, err := scanTree(src, o, true)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if e.info.Mode().IsRegular() {
			n++
		}
	}
	return n
}

// wantTransferred checks rsync --stats' count of transferred files.
func wantTransferred(t *testing.T, r *rsyncResult, want int) {
	t.Helper()
	if got := statValue(t, r, "Number of regular files transferred"); int(got) != want {
		t.Errorf("Number of regular files transferred: %v, want %d\n%s", got, want, r)
	}
}

// probe runs Portage's timestamp probe (its options plus --inplace, the
// single file metadata/timestamp.chk into a local file) and checks the
// result against the source.
func probe(t *testing.T, srv *server, mod, src string, proto int, compress bool) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "timestamp.chk")
	start := time.Now()
	mustRsync(t, portageArgs(proto, compress, "--inplace", srv.url(mod+"/metadata/timestamp.chk"), out)...)
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("timestamp probe took %v; emerge kills it after 15 s", d)
	}
	want, err := os.ReadFile(filepath.Join(src, testtree.TimestampFile))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("probe wrote nothing: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("probe got %q, want %q", got, want)
	}
	wi, _ := os.Stat(filepath.Join(src, testtree.TimestampFile))
	gi, _ := os.Stat(out)
	if wi.ModTime().Unix() != gi.ModTime().Unix() || wi.Mode() != gi.Mode() {
		t.Errorf("probe file: mode %v mtime %v, want %v %v", gi.Mode(), gi.ModTime(), wi.Mode(), wi.ModTime())
	}
}

// TestPortageSync is emerge --sync against the server with Portage's exact
// options, at each forced protocol, with and without --compress: the
// timestamp probe, the initial sync, a no-op re-sync that moves no file
// data, and an incremental sync after the tree changed (changes,
// additions, removals, type changes).
func TestPortageSync(t *testing.T) {
	forEachServer(t, func(t *testing.T, kind serverKind) {
		for _, proto := range []int{27, 28, 29, 30, 31} {
			for _, compress := range []bool{false, true} {
				name := fmt.Sprintf("protocol=%d", proto)
				if compress {
					name += "/compress"
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					testPortageSync(t, kind, proto, compress)
				})
			}
		}
	})
}

func testPortageSync(t *testing.T, kind serverKind, proto int, compress bool) {
	const mod = "gentoo-portage"
	src := newTree(t, uint64(proto), matrixFiles)
	srv := startServer(t, kind, serverConf{modules: []module{{name: mod, path: src, comment: "Gentoo tree"}}})
	dst := filepath.Join(t.TempDir(), "repo")
	o := portageCmp(proto)

	probe(t, srv, mod, src, proto, compress)

	r := mustRsync(t, portageArgs(proto, compress, srv.url(mod+"/"), dst+"/")...)
	if compareTrees(t, src, dst, o) > 0 {
		t.Fatalf("initial sync differs\n%s", r)
	}
	wantTransferred(t, r, regularFiles(t, src, o))

	r = mustRsync(t, portageArgs(proto, compress, srv.url(mod+"/"), dst+"/")...)
	wantTransferred(t, r, 0)
	if got := statValue(t, r, "Literal data"); got != 0 {
		t.Errorf("no-op sync sent %v bytes of literal data\n%s", got, r)
	}
	compareTrees(t, src, dst, o)

	ch, err := testtree.Mutate(src, 1000+uint64(proto))
	if err != nil {
		t.Fatal(err)
	}
	settle(kind)
	probe(t, srv, mod, src, proto, compress)
	r = mustRsync(t, portageArgs(proto, compress, srv.url(mod+"/"), dst+"/")...)
	if compareTrees(t, src, dst, o) > 0 {
		t.Fatalf("incremental sync differs\n%s", r)
	}
	wantTransferred(t, r, ch.Transfers)
	for _, gone := range append(append([]string{}, ch.Removed...), ch.RemovedDirs...) {
		if _, err := os.Lstat(filepath.Join(dst, gone)); !os.IsNotExist(err) {
			t.Errorf("%s was removed from the source but is still in the destination (err %v)", gone, err)
		}
	}
	if fi, err := os.Lstat(filepath.Join(dst, ch.DirToFile)); err != nil || fi.Mode().Type() != 0 {
		t.Errorf("%s should now be a regular file: %v %v", ch.DirToFile, fi, err)
	}
	if fi, err := os.Lstat(filepath.Join(dst, ch.FileToDir)); err != nil || fi.Mode().Type() != fs.ModeDir {
		t.Errorf("%s should now be a directory: %v %v", ch.FileToDir, fi, err)
	}
}

// TestPortageVariants is emerge --sync with the options emerge adds:
// --verbose and --progress (emerge --verbose), --quiet, and --checksum
// (emerge --debug).
func TestPortageVariants(t *testing.T) {
	forEachServer(t, func(t *testing.T, kind serverKind) {
		const mod = "gentoo-portage"
		src := newTree(t, 71, 300)
		srv := startServer(t, kind, serverConf{modules: []module{{name: mod, path: src}}})
		for _, c := range []struct {
			name  string
			extra []string
		}{
			{"verbose-progress", []string{"--verbose", "--progress"}},
			{"quiet", []string{"--quiet"}},
			{"checksum", []string{"--verbose", "--checksum"}},
		} {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				dst := filepath.Join(t.TempDir(), "repo")
				args := append(portageArgs(0, true, c.extra...), srv.url(mod+"/"), dst+"/")
				r := mustRsync(t, args...)
				compareTrees(t, src, dst, portageCmp(0))
				if c.name == "verbose-progress" && !strings.Contains(r.stdout, "100%") {
					t.Errorf("--progress printed no 100%% line:\n%s", r)
				}
				r = mustRsync(t, args...)
				if c.name != "quiet" {
					wantTransferred(t, r, 0)
				}
			})
		}
	})
}

// TestConcurrentClients: several Portage syncs at once share the server's
// file list and each gets the whole tree.
func TestConcurrentClients(t *testing.T) {
	forEachServer(t, func(t *testing.T, kind serverKind) {
		const mod = "gentoo-portage"
		src := newTree(t, 72, 400)
		srv := startServer(t, kind, serverConf{modules: []module{{name: mod, path: src}}})
		const n = 6
		dsts := make([]string, n)
		results := make([]*rsyncResult, n)
		var wg sync.WaitGroup
		for i := range dsts {
			dsts[i] = filepath.Join(t.TempDir(), "repo")
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = rsyncCmd(t, append(portageArgs(0, true), srv.url(mod+"/"), dsts[i]+"/")...)
			}()
		}
		wg.Wait()
		for i, r := range results {
			if r.code != 0 {
				t.Errorf("client %d failed:\n%s", i, r)
				continue
			}
			compareTrees(t, src, dsts[i], portageCmp(0))
		}
	})
}

// TestInPlaceChange: files changed in place (written without a rename, so
// no directory changes) must reach clients too. A mirror script that does
// `date -u ... > metadata/timestamp.chk` is the common case: the probe sees
// the new timestamp, so the full sync must bring it, or emerge would find a
// new timestamp on every probe and never catch up.
func TestInPlaceChange(t *testing.T) {
	forEachServer(t, func(t *testing.T, kind serverKind) {
		const mod = "gentoo-portage"
		src := newTree(t, 73, 200)
		srv := startServer(t, kind, serverConf{modules: []module{{name: mod, path: src}}})
		dst := filepath.Join(t.TempDir(), "repo")
		args := append(portageArgs(0, true), srv.url(mod+"/"), dst+"/")
		mustRsync(t, args...)

		ts := filepath.Join(src, testtree.TimestampFile)
		f, err := os.OpenFile(ts, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString("Tue, 24 Nov 2026 12:00:00 +0000\n"); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(src, "eclass/cmake.eclass"), 0o600); err != nil {
			t.Fatal(err)
		}
		settle(kind)
		probe(t, srv, mod, src, 0, true)
		r := mustRsync(t, args...)
		if compareTrees(t, src, dst, portageCmp(0)) > 0 {
			t.Errorf("in-place changes did not reach the client\n%s", r)
		}
	})
}

// TestSnapshotSwitch: the module path is a symlink that is switched
// atomically to a new tree (as lanmirror's tree mirror publishes
// snapshots). The very next client must get the new tree, without
// waiting for any recheck interval.
func TestSnapshotSwitch(t *testing.T) {
	forEachServer(t, func(t *testing.T, kind serverKind) {
		const mod = "gentoo-portage"
		base := t.TempDir()
		a, b := filepath.Join(base, "snap-a"), filepath.Join(base, "snap-b")
		for i, dir := range []string{a, b} {
			if _, err := testtree.Generate(dir, testtree.Options{Seed: 80 + uint64(i), Files: 200, PortageExcluded: true}); err != nil {
				t.Fatal(err)
			}
		}
		current := filepath.Join(base, "current")
		if err := os.Symlink("snap-a", current); err != nil {
			t.Fatal(err)
		}
		srv := startServer(t, kind, serverConf{modules: []module{{name: mod, path: current}}})
		dst := filepath.Join(t.TempDir(), "repo")
		args := append(portageArgs(0, true), srv.url(mod+"/"), dst+"/")
		mustRsync(t, args...)
		compareTrees(t, a, dst, portageCmp(0))

		// Switch: a new symlink renamed over the old one.
		if err := os.Symlink("snap-b", current+".new"); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(current+".new", current); err != nil {
			t.Fatal(err)
		}
		probe(t, srv, mod, b, 0, true)
		r := mustRsync(t, args...)
		if compareTrees(t, b, dst, portageCmp(0)) > 0 {
			t.Errorf("the client did not get the new snapshot\n%s", r)
		}
	})
}

// TestPortageSubmodules is `emerge --sync --sync-submodule=glsa,news,profiles`:
// Portage adds --relative and asks for each submodule path with rsync's
// "/./" syntax (portage/sync/modules/rsync/rsync.py), in one session.
func TestPortageSubmodules(t *testing.T) {
	forEachServer(t, func(t *testing.T, kind serverKind) {
		const mod = "gentoo-portage"
		src := newTree(t, 74, 300)
		if err := os.MkdirAll(filepath.Join(src, "metadata", "glsa"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, "metadata", "glsa", "glsa-202401-01.xml"), []byte("<glsa/>\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		srv := startServer(t, kind, serverConf{modules: []module{{name: mod, path: src}}})
		for _, proto := range []int{29, 31} {
			dst := filepath.Join(t.TempDir(), "repo")
			args := portageArgs(proto, true, "--relative")
			for _, p := range []string{"metadata/glsa", "metadata/news", "metadata/layout.conf", "profiles"} {
				args = append(args, srv.url(mod+"/./"+p))
			}
			mustRsync(t, append(args, dst)...)
			o := portageCmp(proto)
			o.skipRoot = true
			o.exclude = func(rel string, isDir bool) bool {
				for _, keep := range []string{"metadata/glsa", "metadata/news", "metadata/layout.conf", "profiles"} {
					if rel == keep || strings.HasPrefix(rel, keep+"/") {
						return false
					}
				}
				return !(rel == "metadata" && isDir)
			}
			compareTrees(t, src, dst, o)
		}
	})
}
