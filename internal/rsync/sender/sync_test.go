package sender

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// portageSkip are the top-level directories Portage excludes, and the
// symlink pointing outside the tree that --safe-links drops.
var portageSkip = []string{"distfiles", "local", "packages", ".git", "profiles/link-out"}

// TestPortageSyncProtocol31 mirrors a generated tree with Portage's exact
// options (without -z) at the client's default protocol and compares
// the result byte for byte.
func TestPortageSyncProtocol31(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src, 1000)
	srv := startServer(t, src, true)
	dst := t.TempDir()
	out, err := rsyncCmd(t, append(without(portageOpts, "--compress"), srv.url(), dst+"/")...)
	if err != nil {
		t.Fatalf("rsync: %v\n%s\nserver log:\n%s", err, out, srv.logs)
	}
	if serr := srv.sessionErr(); serr != nil {
		t.Fatalf("session: %v\n%s", serr, out)
	}
	compareTrees(t, src, dst, true, portageSkip...)
	if !strings.Contains(out, "Number of regular files transferred: 1,005") {
		t.Errorf("unexpected stats:\n%s", out)
	}
}

// syncOnce runs one stock client against srv into dst and returns its
// output; the session must succeed.
func syncOnce(t *testing.T, srv *testServer, dst string, opts ...string) string {
	t.Helper()
	out, err := rsyncCmd(t, append(opts, srv.url(), dst+"/")...)
	if err != nil {
		t.Fatalf("rsync %v: %v\n%s\nserver log:\n%s", opts, err, out, srv.logs)
	}
	if serr := srv.sessionErr(); serr != nil {
		t.Fatalf("session: %v\n%s\nserver log:\n%s", serr, out, srv.logs)
	}
	return out
}

// TestPortageSyncProtocols mirrors the tree with Portage's options at
// every protocol from 27 to 31, then checks that a re-sync moves no file.
func TestPortageSyncProtocols(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src, 120)
	srv := startServer(t, src, true)
	for _, proto := range []string{"27", "28", "29", "30", "31"} {
		t.Run("p"+proto, func(t *testing.T) {
			dst := t.TempDir()
			o := append(without(portageOpts, "--compress"), "--protocol="+proto)
			out := syncOnce(t, srv, dst, o...)
			compareTrees(t, src, dst, proto == "31", portageSkip...)
			if !strings.Contains(out, "Number of regular files transferred: 125") {
				t.Errorf("first sync stats:\n%s", out)
			}
			out = syncOnce(t, srv, dst, o...)
			if !strings.Contains(out, "Number of regular files transferred: 0") {
				t.Errorf("no-op re-sync transferred files:\n%s", out)
			}
			compareTrees(t, src, dst, proto == "31", portageSkip...)
		})
	}
}

// modifyTree changes, adds and removes files in src so that a delta
// transfer has both matching blocks and literal data.
func modifyTree(t *testing.T, src string) {
	t.Helper()
	big := filepath.Join(src, "metadata", "big file.bin")
	data, err := os.ReadFile(big)
	if err != nil {
		t.Fatal(err)
	}
	// Insert bytes near the start, overwrite some in the middle, cut the end.
	nd := append([]byte{}, data[:5000]...)
	nd = append(nd, []byte("inserted by the test")...)
	nd = append(nd, data[5000:600000]...)
	nd = append(nd, bytes.Repeat([]byte("x"), 3000)...)
	nd = append(nd, data[603000:len(data)-777]...)
	mt := time.Unix(1710000000, 0)
	if err := os.WriteFile(big, nd, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(big, mt, mt); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "Manifest"), []byte("MANIFEST top v2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(src, "Manifest"), mt, mt); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "app-misc", "new file"), []byte("new\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(src, "x11-libs", "pkg4")); err != nil {
		t.Fatal(err)
	}
}

// TestDeltaAfterChanges syncs, modifies the source, and re-syncs with
// --no-whole-file: the big file must travel as a delta (matched data)
// and the destination must mirror the new tree, deletions included.
func TestDeltaAfterChanges(t *testing.T) {
	for _, proto := range []string{"27", "29", "30", "31"} {
		t.Run("p"+proto, func(t *testing.T) {
			src := t.TempDir()
			makeTree(t, src, 60)
			srv := startServer(t, src, true)
			dst := t.TempDir()
			o := append(without(portageOpts, "--compress", "--whole-file"), "--no-whole-file", "--protocol="+proto)
			syncOnce(t, srv, dst, o...)
			modifyTree(t, src)
			srv.lists.Invalidate()
			out := syncOnce(t, srv, dst, o...)
			compareTrees(t, src, dst, proto == "31", portageSkip...)
			m := regexp.MustCompile(`Matched data: ([0-9.]+)([KM]?) bytes`).FindStringSubmatch(out)
			if m == nil || m[1] == "0" {
				t.Fatalf("no matched data in delta sync:\n%s", out)
			}
			if !strings.Contains(out, "Number of regular files transferred: 3\n") {
				t.Errorf("want 3 files transferred (big file, Manifest, new file):\n%s", out)
			}
			// From 31 the deletion counts travel through the sender.
			if proto == "31" && !regexp.MustCompile(`Number of deleted files: [1-9]`).MatchString(out) {
				t.Errorf("deletion stats missing:\n%s", out)
			}
		})
	}
}

// TestTimestampProbe runs emerge's probe: Portage's options plus
// --inplace for the single file metadata/timestamp.chk.
func TestTimestampProbe(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src, 30)
	srv := startServer(t, src, true)
	dst := t.TempDir()
	o := append(without(portageOpts, "--compress"), "--inplace")
	out, err := rsyncCmd(t, append(o, srv.url()+"metadata/timestamp.chk", dst+"/timestamp.chk")...)
	if err != nil {
		t.Fatalf("probe: %v\n%s", err, out)
	}
	if serr := srv.sessionErr(); serr != nil {
		t.Fatalf("session: %v\n%s", serr, out)
	}
	want, _ := os.ReadFile(filepath.Join(src, "metadata", "timestamp.chk"))
	got, err := os.ReadFile(filepath.Join(dst, "timestamp.chk"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("probe result %q (%v), want %q", got, err, want)
	}
	if !strings.Contains(out, "Number of files: 1 ") {
		t.Errorf("probe listed more than the one file:\n%s", out)
	}
}

// TestListOnly checks --list-only and the implied listing of a URL
// without destination.
func TestListOnly(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src, 30)
	srv := startServer(t, src, true)
	out, err := rsyncCmd(t, "--list-only", "-rl", srv.url())
	if err != nil {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if serr := srv.sessionErr(); serr != nil {
		t.Fatalf("session: %v\n%s", serr, out)
	}
	for _, want := range []string{"metadata/big file.bin", "profiles/link-in -> with space/a b.txt", "dev-lang/pkg1/pkg1-1.ebuild", "profiles/ünïcödé name.txt"} {
		if !strings.Contains(out, want) {
			t.Errorf("listing lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "1,060,921") { // the size of "big file.bin"
		t.Errorf("listing lacks the big file's size:\n%s", out)
	}
	// No destination: the top level only.
	out, err = rsyncCmd(t, srv.url())
	if err != nil {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if serr := srv.sessionErr(); serr != nil {
		t.Fatalf("session: %v\n%s", serr, out)
	}
	if !strings.Contains(out, "metadata") || strings.Contains(out, "timestamp.chk") {
		t.Errorf("top-level listing:\n%s", out)
	}
}

// TestArchiveChecksum runs -avc (owner and group, checksums in the file
// list) twice: the second run must move nothing.
func TestArchiveChecksum(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src, 40)
	srv := startServer(t, src, true)
	for _, proto := range []string{"29", "31"} {
		t.Run("p"+proto, func(t *testing.T) {
			dst := t.TempDir()
			o := []string{"-avc", "--stats", "--protocol=" + proto}
			syncOnce(t, srv, dst, o...)
			compareTrees(t, src, dst, proto == "31")
			out := syncOnce(t, srv, dst, o...)
			if !strings.Contains(out, "Number of regular files transferred: 0") {
				t.Errorf("-c re-sync transferred files:\n%s", out)
			}
		})
	}
}

// TestArchiveCompressed runs -avz, then -avz again after changes.
func TestArchiveCompressed(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src, 40)
	srv := startServer(t, src, true)
	for _, proto := range []string{"27", "30", "31"} {
		t.Run("p"+proto, func(t *testing.T) {
			dst := t.TempDir()
			o := []string{"-avz", "--delete", "--stats", "--protocol=" + proto}
			syncOnce(t, srv, dst, o...)
			compareTrees(t, src, dst, proto == "31")
		})
	}
	dst := t.TempDir()
	syncOnce(t, srv, dst, "-avz")
	modifyTree(t, src)
	srv.lists.Invalidate()
	out := syncOnce(t, srv, dst, "-avz", "--delete", "--stats")
	compareTrees(t, src, dst, true)
	if !strings.Contains(out, "Number of regular files transferred: 3\n") {
		t.Errorf("-avz after changes:\n%s", out)
	}
}

// TestChecksumChoices forces each implemented checksum for block sums,
// whole-file sums and -c list sums, with a delta transfer.
func TestChecksumChoices(t *testing.T) {
	for _, cs := range []string{"xxh128", "xxh3", "xxh64", "md5", "md4"} {
		t.Run(cs, func(t *testing.T) {
			src := t.TempDir()
			makeTree(t, src, 20)
			srv := startServer(t, src, true)
			dst := t.TempDir()
			o := []string{"-rlptc", "--no-whole-file", "--stats", "--checksum-choice=" + cs}
			syncOnce(t, srv, dst, o...)
			modifyTree(t, src)
			srv.lists.Invalidate()
			out := syncOnce(t, srv, dst, append(o, "--delete")...)
			compareTrees(t, src, dst, true)
			if strings.Contains(out, "Matched data: 0 bytes") || !strings.Contains(out, "Number of regular files transferred: 3\n") {
				t.Errorf("delta with %s:\n%s", cs, out)
			}
			out = syncOnce(t, srv, dst, o...)
			if !strings.Contains(out, "Number of regular files transferred: 0") {
				t.Errorf("-c re-sync with %s transferred files:\n%s", cs, out)
			}
		})
	}
}

// TestNegotiatedDefaultChecksum lets the client negotiate (it prefers
// xxh128) and checks a delta re-sync.
func TestNegotiatedDefaultChecksum(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src, 20)
	srv := startServer(t, src, true)
	dst := t.TempDir()
	o := []string{"-rlpt", "--no-whole-file", "--stats", "--debug=nstr"}
	out := syncOnce(t, srv, dst, o...)
	if !strings.Contains(srv.logs.String(), "checksum=xxh128") {
		t.Errorf("client did not negotiate xxh128:\n%s", out)
	}
	modifyTree(t, src)
	srv.lists.Invalidate()
	out = syncOnce(t, srv, dst, append(o, "--delete")...)
	compareTrees(t, src, dst, true)
	if strings.Contains(out, "Matched data: 0 bytes") {
		t.Errorf("no delta:\n%s", out)
	}
}

// TestDryRun checks that -n lists what would move and changes nothing.
func TestDryRun(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src, 20)
	srv := startServer(t, src, true)
	dst := t.TempDir()
	out := syncOnce(t, srv, dst, "-rlptn", "--stats")
	if !strings.Contains(out, "Number of regular files transferred: 29") {
		t.Errorf("dry run stats:\n%s", out)
	}
	ents, _ := os.ReadDir(dst)
	if len(ents) != 0 {
		t.Errorf("dry run wrote %d entries", len(ents))
	}
}

// TestCompressNegotiation runs Portage's options with --compress: the
// sync must work, or, while no compressor is implemented, fail with a
// clear message (below 30 -z means zlib; from 30 the client finds no
// common choice in our list).
func TestCompressNegotiation(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src, 30)
	srv := startServer(t, src, true)
	zlibOK := slices.Contains(ourCompressions(), "zlib")
	for _, proto := range []string{"27", "28", "29", "30", "31"} {
		t.Run("p"+proto, func(t *testing.T) {
			dst := t.TempDir()
			o := append(append([]string{}, portageOpts...), "--protocol="+proto)
			out, err := rsyncCmd(t, append(o, srv.url(), dst+"/")...)
			serr := srv.sessionErr()
			if !zlibOK {
				want := `compression "zlib" is not supported`
				if proto >= "30" {
					want = "Failed to negotiate a compress choice"
				}
				if err == nil || serr == nil || !strings.Contains(out, want) {
					t.Fatalf("want a clear refusal, got %v / %v:\n%s", err, serr, out)
				}
				return
			}
			if err != nil || serr != nil {
				t.Fatalf("rsync: %v, session: %v\n%s", err, serr, out)
			}
			compareTrees(t, src, dst, proto == "31", portageSkip...)
			// The no-op re-sync moves no file data.
			out = syncOnce(t, srv, dst, o...)
			if !strings.Contains(out, "Number of regular files transferred: 0") {
				t.Errorf("no-op re-sync with -z transferred files:\n%s", out)
			}
		})
	}
}

// TestCompressChoicesDelta forces each compressor with a delta re-sync,
// so that matched blocks enter (or, for zlibx, stay out of) the
// compression history as the stock receiver expects.
func TestCompressChoicesDelta(t *testing.T) {
	for _, c := range ourCompressions() {
		if c == "none" {
			t.Fatal("no compressor implemented: ourCompressions offers none")
		}
		for _, proto := range []string{"29", "31"} {
			if c != "zlib" && proto < "30" {
				continue
			}
			t.Run(c+"-p"+proto, func(t *testing.T) {
				src := t.TempDir()
				makeTree(t, src, 20)
				srv := startServer(t, src, true)
				dst := t.TempDir()
				o := []string{"-rlptz", "--no-whole-file", "--stats", "--delete", "--protocol=" + proto}
				if proto >= "30" {
					o = append(o, "--compress-choice="+c)
				}
				syncOnce(t, srv, dst, o...)
				modifyTree(t, src)
				srv.lists.Invalidate()
				out := syncOnce(t, srv, dst, o...)
				compareTrees(t, src, dst, proto == "31")
				if strings.Contains(out, "Matched data: 0 bytes") {
					t.Errorf("no delta with %s:\n%s", c, out)
				}
			})
		}
	}
}

// TestSubtreesAndFilters asks for a subdirectory, the module without a
// trailing slash, several paths at once, and client include/exclude
// rules, comparing with what the stock client should have created.
func TestSubtreesAndFilters(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src, 40)
	srv := startServer(t, src, true)
	host := strings.TrimSuffix(srv.url(), "mod/")

	// A subdirectory's contents.
	dst := t.TempDir()
	syncOnce(t, srv, dst, "-rlpt")
	sub := t.TempDir()
	out, err := rsyncCmd(t, "-rlpt", srv.url()+"profiles/", sub+"/")
	if err != nil || srv.sessionErr() != nil {
		t.Fatalf("subdirectory: %v\n%s", err, out)
	}
	compareTrees(t, filepath.Join(src, "profiles"), sub, true)

	// The module named without a slash: its contents.
	whole := t.TempDir()
	out, err = rsyncCmd(t, "-rlpt", host+"mod", whole+"/")
	if err != nil || srv.sessionErr() != nil {
		t.Fatalf("module without slash: %v\n%s", err, out)
	}
	compareTrees(t, src, whole, true)

	// Two paths: a directory (kept by name) and a file.
	two := t.TempDir()
	out, err = rsyncCmd(t, "-rlpt", srv.url()+"metadata", srv.url()+"Manifest", two+"/")
	if err != nil || srv.sessionErr() != nil {
		t.Fatalf("two paths: %v\n%s", err, out)
	}
	compareTrees(t, filepath.Join(src, "metadata"), filepath.Join(two, "metadata"), true)
	if b, _ := os.ReadFile(filepath.Join(two, "Manifest")); string(b) != "MANIFEST top\n" {
		t.Errorf("Manifest not sent with the directory: %q", b)
	}

	// Only *.ebuild files, all directories.
	eb := t.TempDir()
	out, err = rsyncCmd(t, "-rlpt", "--include=*/", "--include=*.ebuild", "--exclude=*", srv.url(), eb+"/")
	if err != nil || srv.sessionErr() != nil {
		t.Fatalf("filters: %v\n%s", err, out)
	}
	n := 0
	_ = filepath.WalkDir(eb, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if !strings.HasSuffix(p, ".ebuild") {
				t.Errorf("filtered sync brought %s", p)
			}
			n++
		}
		return nil
	})
	if n != 40 {
		t.Errorf("filtered sync brought %d ebuilds, want 40", n)
	}
}

// TestTrickyNames mixes files and directories whose names sort
// differently as plain bytes and as rsync's directory-aware order
// ("a", "a b", "a-b", "a.b", "a/", "ab", a name of 300 bytes): any
// disagreement with the client's order would put contents under the
// wrong names.
func TestTrickyNames(t *testing.T) {
	src := t.TempDir()
	long := strings.Repeat("L", 200) + "/" + strings.Repeat("m", 120)
	files := []string{"a", "a b/x", "a-b", "a.b/y", "ab", "a0/z", "b/a", "b/a b", "b/a-b/c", "b/a.b",
		"c/" + long, "c/" + long + "2", "d/é", "d/e", "d/E", "d/~", "d/-", "d/.hidden", "d/.hid/den"}
	for i, f := range files {
		p := filepath.Join(src, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.Repeat(f, i+1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srv := startServer(t, src, true)
	for _, proto := range []string{"27", "28", "29", "30", "31"} {
		t.Run("p"+proto, func(t *testing.T) {
			dst := t.TempDir()
			syncOnce(t, srv, dst, "-rlpt", "--protocol="+proto)
			compareTrees(t, src, dst, proto == "31")
		})
	}
}

// TestWildcardPaths: wildcards in source paths are expanded by the
// server (as rsyncd does), component by component; a pattern matching
// nothing is reported missing.
func TestWildcardPaths(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src, 20)
	srv := startServer(t, src, true)
	dst := t.TempDir()
	out, err := rsyncCmd(t, "-rlpt", srv.url()+"*-*/pkg1/*.ebuild", srv.url()+"metadata/time[!x]tamp.chk", dst+"/")
	if err != nil || srv.sessionErr() != nil {
		t.Fatalf("wildcards: %v\n%s", err, out)
	}
	ents, _ := os.ReadDir(dst)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	want := []string{"pkg1-1.ebuild", "pkg1-18.ebuild", "timestamp.chk"} // dev-lang and x11-libs
	if !slices.Equal(names, want) {
		t.Errorf("got %v, want %v", names, want)
	}
	out, err = rsyncCmd(t, "-rlpt", srv.url()+"nothing*", t.TempDir()+"/")
	srv.sessionErr()
	if err == nil || !strings.Contains(out, "nothing*") {
		t.Errorf("unmatched pattern not reported: %v\n%s", err, out)
	}
}

// TestRelativePaths: -R keeps full path names (the part before "/./"
// only locates the files) with implied directories, which carry no
// contents: --delete leaves their other entries alone.
func TestRelativePaths(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src, 10)
	srv := startServer(t, src, true)
	host := strings.TrimSuffix(srv.url(), "mod/")
	for _, proto := range []string{"29", "31"} {
		t.Run("p"+proto, func(t *testing.T) {
			dst := t.TempDir()
			extra := filepath.Join(dst, "metadata", "extra")
			if err := os.MkdirAll(filepath.Dir(extra), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(extra, []byte("keep me"), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := rsyncCmd(t, "-rlptR", "--delete", "--protocol="+proto,
				host+"mod/./metadata/timestamp.chk", host+"mod/profiles/./with space", dst+"/")
			if err != nil || srv.sessionErr() != nil {
				t.Fatalf("-R: %v\n%s", err, out)
			}
			want, _ := os.ReadFile(filepath.Join(src, "metadata", "timestamp.chk"))
			if got, _ := os.ReadFile(filepath.Join(dst, "metadata", "timestamp.chk")); !bytes.Equal(got, want) {
				t.Errorf("metadata/timestamp.chk: %q", got)
			}
			if got, _ := os.ReadFile(filepath.Join(dst, "with space", "a b.txt")); string(got) != "spaces\n" {
				t.Errorf("with space/a b.txt: %q", got)
			}
			if _, err := os.Stat(extra); proto >= "30" && err != nil {
				t.Errorf("--delete removed an entry of an implied directory: %v", err)
			}
		})
	}
}
