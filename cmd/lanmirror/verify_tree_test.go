package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/lanmirror/lanmirror/internal/testtree"
	"github.com/lanmirror/lanmirror/internal/testutil"
	"github.com/lanmirror/lanmirror/internal/tree"
)

// runCLIErr runs lanmirror with args and returns standard output, standard
// error and the error.
func runCLIErr(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
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
	return out.String(), errb.String(), err
}

// signedUpstream writes a small signed tree and the armored public key.
func signedUpstream(t *testing.T, ts time.Time) (up, keyFile string, key *openpgp.Entity) {
	t.Helper()
	key, err := testtree.NewSigningKey("Test release key", "release@example.org", &packet.Config{Time: func() time.Time { return ts.Add(-30 * 24 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	up = filepath.Join(t.TempDir(), "upstream")
	if _, err := testtree.Generate(up, testtree.Options{Seed: 3, Files: 120, BigFile: 50 << 10, PortageExcluded: true}); err != nil {
		t.Fatal(err)
	}
	if err := testtree.WriteManifests(up, testtree.ManifestOptions{Key: key, Timestamp: ts,
		SignConfig: &packet.Config{Time: func() time.Time { return ts }}}); err != nil {
		t.Fatal(err)
	}
	asc, err := testtree.ArmoredPublicKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile = filepath.Join(t.TempDir(), "release.asc")
	if err := os.WriteFile(keyFile, asc, 0o644); err != nil {
		t.Fatal(err)
	}
	return up, keyFile, key
}

// touch gives path the modification time when: the mirror pulls with
// rsync's quick check (size and time) against the published snapshot, so a
// same-size file rewritten within the same second would not be pulled.
func touch(t *testing.T, path string, when time.Time) {
	t.Helper()
	if err := os.Chtimes(path, when, when); err != nil {
		t.Fatal(err)
	}
}

// bumpTimestampChk makes the upstream's metadata/timestamp.chk newer, so
// that the mirror pulls again.
func bumpTimestampChk(t *testing.T, up string, when time.Time) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(up, tree.TimestampFile), []byte(when.UTC().Format(tree.TimestampLayout)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSyncPublishesOnlyVerifiedTrees(t *testing.T) {
	testutil.RequireTool(t, "rsync")
	ts := time.Now().Add(-time.Hour).Truncate(time.Second)
	up, keyFile, key := signedUpstream(t, ts)
	data := t.TempDir()
	current := filepath.Join(data, "tree", "current")

	out, _, err := runCLIErr(t, "sync", "--data", data, "--upstream", up, "--tree-openpgp-key", keyFile)
	if err != nil || !strings.HasPrefix(out, "published ") {
		t.Fatalf("good tree: %q %v", out, err)
	}
	first, err := os.Readlink(current)
	if err != nil {
		t.Fatal(err)
	}
	ebuild := ""
	filepath.WalkDir(up, func(p string, d os.DirEntry, err error) error {
		if ebuild == "" && err == nil && strings.HasSuffix(p, ".ebuild") {
			ebuild, _ = filepath.Rel(up, p)
		}
		return nil
	})
	orig, err := os.ReadFile(filepath.Join(up, ebuild))
	if err != nil {
		t.Fatal(err)
	}

	// One byte changed upstream: the pulled tree is refused, the file and
	// the reason named, the published snapshot kept.
	bad := bytes.Clone(orig)
	bad[5] ^= 0x20
	os.WriteFile(filepath.Join(up, ebuild), bad, 0o644)
	touch(t, filepath.Join(up, ebuild), ts.Add(time.Minute))
	bumpTimestampChk(t, up, ts.Add(time.Minute))
	_, stderr, err := runCLIErr(t, "sync", "--data", data, "--upstream", up, "--tree-openpgp-key", keyFile)
	if err == nil {
		t.Fatal("tampered tree published")
	}
	for _, s := range []string{err.Error(), stderr} {
		if !strings.Contains(s, ebuild) || !strings.Contains(s, "BLAKE2B mismatch") {
			t.Errorf("refusal does not name %s and the reason:\n%s", ebuild, s)
		}
	}
	if now, _ := os.Readlink(current); now != first {
		t.Fatalf("current moved from %s to %s", first, now)
	}
	if b, _ := os.ReadFile(filepath.Join(current, ebuild)); !bytes.Equal(b, orig) {
		t.Fatal("published ebuild changed")
	}
	// verify-tree says the same about the upstream directory.
	_, stderr, err = runCLIErr(t, "verify-tree", "--openpgp-key", keyFile, up)
	if err == nil || !strings.Contains(stderr, ebuild+": BLAKE2B mismatch") {
		t.Fatalf("verify-tree on the tampered tree: %v\n%s", err, stderr)
	}
	os.WriteFile(filepath.Join(up, ebuild), orig, 0o644)
	touch(t, filepath.Join(up, ebuild), ts.Add(2*time.Minute))

	// A correctly signed but older tree (rollback) is refused too.
	if err := testtree.WriteTopManifest(up, testtree.ManifestOptions{Key: key, Timestamp: ts.Add(-time.Minute),
		SignConfig: &packet.Config{Time: func() time.Time { return ts }}}); err != nil {
		t.Fatal(err)
	}
	touch(t, filepath.Join(up, "Manifest"), ts.Add(2*time.Minute))
	bumpTimestampChk(t, up, ts.Add(2*time.Minute))
	if _, _, err := runCLIErr(t, "sync", "--data", data, "--upstream", up, "--tree-openpgp-key", keyFile); err == nil ||
		!strings.Contains(err.Error(), "Manifest: TIMESTAMP") || !strings.Contains(err.Error(), "older than the published tree's") {
		t.Fatalf("rollback: %v", err)
	}
	// A newer good tree is published, and verify-tree accepts it.
	if err := testtree.WriteTopManifest(up, testtree.ManifestOptions{Key: key, Timestamp: ts.Add(time.Minute),
		SignConfig: &packet.Config{Time: func() time.Time { return ts }}}); err != nil {
		t.Fatal(err)
	}
	touch(t, filepath.Join(up, "Manifest"), ts.Add(3*time.Minute))
	// A tree older than --tree-max-age is refused.
	if _, _, err := runCLIErr(t, "sync", "--data", data, "--upstream", up, "--tree-openpgp-key", keyFile, "--tree-max-age", "30m"); err == nil ||
		!strings.Contains(err.Error(), "maximum age 30m0s") {
		t.Fatalf("max age: %v", err)
	}
	if now, _ := os.Readlink(current); now != first {
		t.Fatalf("current moved from %s to %s", first, now)
	}

	out, _, err = runCLIErr(t, "sync", "--data", data, "--upstream", up, "--tree-openpgp-key", keyFile)
	if err != nil || !strings.HasPrefix(out, "published ") {
		t.Fatalf("newer good tree: %q %v", out, err)
	}
	out, _, err = runCLIErr(t, "verify-tree", "--openpgp-key", keyFile, current)
	if err != nil || !strings.Contains(out, "good tree, signed by ") {
		t.Fatalf("verify-tree on the published tree: %q %v", out, err)
	}
}

func TestSyncWithoutKeyWarns(t *testing.T) {
	testutil.RequireTool(t, "rsync")
	up, _, _ := signedUpstream(t, time.Now().Add(-time.Hour))
	_, stderr, err := runCLIErr(t, "sync", "--data", t.TempDir(), "--upstream", up)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr, "THE TREE IS NOT AUTHENTICATED") {
		t.Fatalf("no warning about the unauthenticated tree:\n%s", stderr)
	}
	if _, _, err := runCLIErr(t, "sync", "--data", t.TempDir(), "--upstream", up, "--tree-openpgp-key", filepath.Join(t.TempDir(), "missing.asc")); err == nil ||
		!strings.Contains(err.Error(), "--tree-openpgp-key") {
		t.Fatalf("missing key file: %v", err)
	}
	if _, _, err := runCLIErr(t, "verify-tree", up); err == nil || !strings.Contains(err.Error(), "--openpgp-key FILE is required") {
		t.Fatalf("verify-tree without a key: %v", err)
	}
	if out, _, err := runCLIErr(t, "verify-tree", "--unsigned", up); err != nil || !strings.Contains(out, "signature not checked") {
		t.Fatalf("verify-tree --unsigned: %q %v", out, err)
	}
}

func TestCheckConfigTreeKey(t *testing.T) {
	_, keyFile, _ := signedUpstream(t, time.Now().Add(-time.Hour))
	base := []string{"--config", "", "--rsync", "", "--data", t.TempDir(), "--tree-upstream", "rsync://127.0.0.1/gentoo-portage/"}
	out, err := runCheckConfig(t, base...)
	if err != nil || !strings.Contains(out, "warning: THE TREE IS NOT AUTHENTICATED") {
		t.Fatalf("without a key: %v\n%s", err, out)
	}
	out, err = runCheckConfig(t, append(base, "--tree-openpgp-key", keyFile, "--tree-max-age", "36h")...)
	if err != nil || !strings.Contains(out, "tree: pulled trees verified before publishing, signed by ") || !strings.Contains(out, "max age 36h0m0s") {
		t.Fatalf("with a key: %v\n%s", err, out)
	}
	out, err = runCheckConfig(t, append(base, "--tree-openpgp-key", filepath.Join(t.TempDir(), "missing.asc"))...)
	if err == nil || !strings.Contains(out, "error: --tree-openpgp-key: ") {
		t.Fatalf("missing key file: %v\n%s", err, out)
	}
}
