package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/distcache"
	"github.com/lanmirror/lanmirror/internal/gentoo"
	"github.com/lanmirror/lanmirror/internal/testutil"
)

// testTree writes an ebuild repository at dir whose package Manifests carry
// the real DIST entries of the given distfiles: pkgs maps "cat/pkg" to
// distfile name -> content.
func testTree(t *testing.T, dir string, pkgs map[string]map[string][]byte) {
	t.Helper()
	cats := map[string]bool{}
	for atom, files := range pkgs {
		pdir := filepath.Join(dir, filepath.FromSlash(atom))
		if err := os.MkdirAll(pdir, 0o755); err != nil {
			t.Fatal(err)
		}
		cats[strings.Split(atom, "/")[0]] = true
		var lines []string
		lines = append(lines, "EBUILD "+filepath.Base(atom)+"-1.ebuild 5 BLAKE2B "+strings.Repeat("ab", 64))
		for name, data := range files {
			d, err := gentoo.DigestReader(name, bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			lines = append(lines, gentoo.FormatDistLine(d))
		}
		if err := os.WriteFile(filepath.Join(pdir, "Manifest"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(dir, "metadata"), 0o755)
	os.WriteFile(filepath.Join(dir, "metadata", "timestamp.chk"), []byte("Tue, 24 Nov 2026 12:00:00 +0000\n"), 0o644)
}

// content makes distinct test file contents of n bytes.
func content(seed string, n int) []byte {
	b := bytes.Repeat([]byte(seed+"|"), n/(len(seed)+1)+1)
	return b[:n]
}

// runCLI runs lanmirror with args through the cobra root command and
// returns its standard output and error.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	root := newRoot()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if testing.Verbose() {
		t.Logf("lanmirror %s\n%s%s", strings.Join(args, " "), out.String(), errb.String())
	}
	return out.String(), err
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func cachedNames(t *testing.T, data string) []string {
	t.Helper()
	st, err := distcache.OpenStore(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ents, err := st.Entries(distcache.DistfilesPrefix)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name)
	}
	return out
}

// importFixture is a tree and a DISTDIR with good, corrupt and unknown
// files.
type importFixture struct {
	tree, distdir string
	good          map[string][]byte
}

func newImportFixture(t *testing.T) importFixture {
	base := t.TempDir()
	f := importFixture{tree: filepath.Join(base, "tree"), distdir: filepath.Join(base, "distfiles")}
	f.good = map[string][]byte{
		"good-1.0.tar.gz": content("good one", 300_000),
		"good-2.0.tar.xz": content("good two", 12_345),
	}
	corrupt := content("corrupt", 5000)
	testTree(t, f.tree, map[string]map[string][]byte{
		"app-misc/good":    f.good,
		"dev-libs/corrupt": {"corrupt-1.tar.gz": corrupt},
		"dev-libs/absent":  {"absent-1.tar.gz": content("absent", 10)},
	})
	os.MkdirAll(f.distdir, 0o755)
	for n, b := range f.good {
		os.WriteFile(filepath.Join(f.distdir, n), b, 0o644)
	}
	bad := bytes.Clone(corrupt)
	bad[100] ^= 0xff // right size, wrong bytes
	os.WriteFile(filepath.Join(f.distdir, "corrupt-1.tar.gz"), bad, 0o644)
	os.WriteFile(filepath.Join(f.distdir, "unknown-9.zip"), []byte("nobody knows me"), 0o644)
	os.WriteFile(filepath.Join(f.distdir, "good-3.tar.gz.__download__"), []byte("partial"), 0o644)
	os.MkdirAll(filepath.Join(f.distdir, "git3-src"), 0o755)
	return f
}

func (f importFixture) sources(t *testing.T) []string {
	ents, err := os.ReadDir(f.distdir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestImportGoodCorruptUnknown(t *testing.T) {
	f := newImportFixture(t)
	data := filepath.Join(t.TempDir(), "data")
	out, err := runCLI(t, "import", f.distdir, "--data", data, "--tree", f.tree)
	if err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	for _, want := range []string{
		"corrupt  corrupt-1.tar.gz: BLAKE2B digest ",
		"unknown  unknown-9.zip\n",
		"imported 2 (", "already cached 0", "corrupt 1 (4.9 KiB)", "unknown 1 (15 B)", "failed 0",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "__download__") {
		t.Errorf("partial download reported:\n%s", out)
	}
	if got := strings.Join(cachedNames(t, data), " "); got != "good-1.0.tar.gz good-2.0.tar.xz" {
		t.Fatalf("cache holds %q", got)
	}
	for n, b := range f.good {
		cp := filepath.Join(data, "distfiles", n)
		got, err := os.ReadFile(cp)
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("cached %s differs (%v)", n, err)
		}
		if inode(t, cp) != inode(t, filepath.Join(f.distdir, n)) {
			t.Errorf("%s was copied, not hard-linked", n)
		}
	}
	// Nothing was removed from DISTDIR.
	if got := len(f.sources(t)); got != 6 {
		t.Errorf("DISTDIR has %d entries, want 6", got)
	}

	// Second run: everything already there.
	out, err = runCLI(t, "import", f.distdir, "--data", data, "--tree", f.tree)
	if err != nil || !strings.Contains(out, "imported 0 (0 B), already cached 2") {
		t.Errorf("second import: %v\n%s", err, out)
	}
}

func TestImportDryRun(t *testing.T) {
	f := newImportFixture(t)
	data := filepath.Join(t.TempDir(), "data")
	os.MkdirAll(data, 0o755)
	out, err := runCLI(t, "import", f.distdir, "--data", data, "--tree", f.tree, "--dry-run", "--move")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "would import 2") || !strings.Contains(out, "import   good-1.0.tar.gz") {
		t.Errorf("dry run output:\n%s", out)
	}
	if got := cachedNames(t, data); len(got) != 0 {
		t.Errorf("dry run cached %v", got)
	}
	if got := len(f.sources(t)); got != 6 {
		t.Errorf("dry run with --move removed sources: %d left", got)
	}
}

func TestImportMove(t *testing.T) {
	f := newImportFixture(t)
	data := filepath.Join(t.TempDir(), "data")
	out, err := runCLI(t, "import", f.distdir, "--data", data, "--tree", f.tree, "--move")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := strings.Join(f.sources(t), " "); got != "corrupt-1.tar.gz git3-src good-3.tar.gz.__download__ unknown-9.zip" {
		t.Errorf("DISTDIR after --move: %s", got)
	}
	for n, b := range f.good {
		if got, _ := os.ReadFile(filepath.Join(data, "distfiles", n)); !bytes.Equal(got, b) {
			t.Errorf("moved %s not in the cache", n)
		}
	}
}

func TestImportReplacesCorruptCachedCopy(t *testing.T) {
	f := newImportFixture(t)
	data := filepath.Join(t.TempDir(), "data")
	// The cache holds a damaged good-2.0.tar.xz.
	st, err := distcache.OpenStore(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(bad, content("damaged", len(f.good["good-2.0.tar.xz"])), 0o644)
	if err := st.Add(distcache.DistfilesPrefix+"good-2.0.tar.xz", bad, false); err != nil {
		t.Fatal(err)
	}
	st.Close()
	out, err := runCLI(t, "import", f.distdir, "--data", data, "--tree", f.tree)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "imported good-2.0.tar.xz: replaces a cached copy") || !strings.Contains(out, "imported 2") {
		t.Errorf("output:\n%s", out)
	}
	if got, _ := os.ReadFile(filepath.Join(data, "distfiles", "good-2.0.tar.xz")); !bytes.Equal(got, f.good["good-2.0.tar.xz"]) {
		t.Error("damaged cached copy not replaced")
	}
}

func TestImportUnknownFlagAndErrors(t *testing.T) {
	f := newImportFixture(t)
	data := filepath.Join(t.TempDir(), "data")
	out, err := runCLI(t, "import", f.distdir, "--data", data, "--tree", f.tree, "--unknown")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "imported unknown-9.zip: unverified") || !strings.Contains(out, "imported 3") {
		t.Errorf("--unknown output:\n%s", out)
	}
	if got := strings.Join(cachedNames(t, data), " "); got != "good-1.0.tar.gz good-2.0.tar.xz unknown-9.zip" {
		t.Errorf("cache: %s", got)
	}

	if _, err := runCLI(t, "import", filepath.Join(f.distdir, "missing"), "--data", data, "--tree", f.tree); err == nil {
		t.Error("missing DISTDIR: no error")
	}
	empty := t.TempDir()
	if _, err := runCLI(t, "import", f.distdir, "--data", filepath.Join(empty, "data")); err == nil || !strings.Contains(err.Error(), "--tree") {
		t.Errorf("no tree: %v", err)
	}
	if _, err := runCLI(t, "import", f.distdir, "--data", data, "--tree", filepath.Join(empty, "no-tree")); err == nil {
		t.Error("missing tree: no error")
	}
}

// A DISTDIR on another file system is copied (no hard link possible).
func TestImportCopiesAcrossFileSystems(t *testing.T) {
	shm, err := os.MkdirTemp("/dev/shm", "lanmirror-import-")
	if err != nil {
		testutil.MissingTool(t, "no writable /dev/shm (a tmpfs on another file system than the temp dir): "+err.Error())
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	data := filepath.Join(t.TempDir(), "data")
	os.MkdirAll(data, 0o755)
	var a, b syscall.Stat_t
	if syscall.Stat(shm, &a) != nil || syscall.Stat(data, &b) != nil || a.Dev == b.Dev {
		testutil.MissingTool(t, "/dev/shm is on the same file system as the temp dir "+os.TempDir()+": no cross-file-system import to test")
	}
	tree := filepath.Join(t.TempDir(), "tree")
	file := content("cross-fs", 50_000)
	testTree(t, tree, map[string]map[string][]byte{"app-misc/x": {"x-1.tar.gz": file}})
	src := filepath.Join(shm, "x-1.tar.gz")
	os.WriteFile(src, file, 0o644)
	out, err := runCLI(t, "import", shm, "--data", data, "--tree", tree, "--move")
	if err != nil || !strings.Contains(out, "imported 1") {
		t.Fatalf("import: %v\n%s", err, out)
	}
	if got, _ := os.ReadFile(filepath.Join(data, "distfiles", "x-1.tar.gz")); !bytes.Equal(got, file) {
		t.Error("copied file differs")
	}
	if _, err := os.Stat(src); !os.IsNotExist(err) {
		t.Errorf("--move left the source: %v", err)
	}
}

// The progress bar appears on a terminal (a pty from script(1)) and not
// when standard error is a pipe. The test binary runs as lanmirror.
func TestImportProgressBarOnTerminal(t *testing.T) {
	script := testutil.RequireTool(t, "script")
	f := newImportFixture(t)
	run := func(tty bool, data string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		args := []string{htBinary(t), "import", f.distdir, "--data", data, "--tree", f.tree}
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
	out := run(true, filepath.Join(t.TempDir(), "a"))
	if !strings.Contains(out, "verifying") || !strings.Contains(out, "imported 2") {
		t.Errorf("no progress bar on a terminal:\n%q", out)
	}
	out = run(false, filepath.Join(t.TempDir(), "b"))
	if strings.Contains(out, "verifying") || !strings.Contains(out, "imported 2") {
		t.Errorf("progress bar without a terminal:\n%q", out)
	}
}
