package treeverify

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/lanmirror/lanmirror/internal/testtree"
)

var (
	keysOnce          sync.Once
	goodKey, otherKey *openpgp.Entity
	keysErr           error
)

// keys returns the tree's signing key and an unrelated one.
func keys(t *testing.T) (*openpgp.Entity, *openpgp.Entity) {
	t.Helper()
	keysOnce.Do(func() {
		made := &packet.Config{Time: at(treeTime.Add(-30 * 24 * time.Hour))}
		goodKey, keysErr = testtree.NewSigningKey("Gentoo test release key", "release@example.org", made)
		if keysErr == nil {
			otherKey, keysErr = testtree.NewSigningKey("Someone else", "other@example.org", made)
		}
	})
	if keysErr != nil {
		t.Fatal(keysErr)
	}
	return goodKey, otherKey
}

// publicRing returns the public part of e as a key ring, as read from an
// armored key file.
func publicRing(t *testing.T, e *openpgp.Entity) openpgp.EntityList {
	t.Helper()
	asc, err := testtree.ArmoredPublicKey(e)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "key.asc")
	if err := os.WriteFile(p, asc, 0o644); err != nil {
		t.Fatal(err)
	}
	kr, err := LoadKeyring(p)
	if err != nil {
		t.Fatal(err)
	}
	if kr[0].PrivateKey != nil {
		t.Fatal("key ring holds a private key")
	}
	return kr
}

var treeTime = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func at(tm time.Time) func() time.Time { return func() time.Time { return tm } }

// signedTree writes a Gentoo-like tree (categories with Manifest.gz,
// package Manifests, md5-cache, signed metadata/news, a signed top-level
// Manifest) into a new directory.
func signedTree(t *testing.T, key *openpgp.Entity, cfg *packet.Config) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tree")
	if _, err := testtree.Generate(dir, testtree.Options{Seed: 7, Files: 120, BigFile: 100 << 10, PortageExcluded: true}); err != nil {
		t.Fatal(err)
	}
	if cfg == nil {
		cfg = &packet.Config{Time: at(treeTime)}
	}
	if err := testtree.WriteManifests(dir, testtree.ManifestOptions{Key: key, SignConfig: cfg, Timestamp: treeTime}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func opts(kr openpgp.EntityList) Options {
	return Options{Keyring: kr, Now: at(treeTime.Add(time.Hour)), MaxAge: 24 * time.Hour, Jobs: 3}
}

// wantRefused checks that err is an *Error with a problem for path whose
// reason contains want.
func wantRefused(t *testing.T, err error, path, want string) {
	t.Helper()
	var ve *Error
	if !errors.As(err, &ve) {
		t.Fatalf("want a refusal naming %s (%s), got %v", path, want, err)
	}
	for _, p := range ve.Problems {
		if p.Path == path && strings.Contains(p.Reason, want) {
			if !strings.Contains(err.Error(), path+": ") {
				t.Fatalf("error message %q does not name %s", err, path)
			}
			return
		}
	}
	t.Fatalf("no problem %s: ...%s... in %v", path, want, ve.Problems)
}

func TestVerifyGoodTree(t *testing.T) {
	key, _ := keys(t)
	dir := signedTree(t, key, nil)
	rep, err := Verify(context.Background(), dir, opts(publicRing(t, key)))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Timestamp.Equal(treeTime) {
		t.Errorf("timestamp %v, want %v", rep.Timestamp, treeTime)
	}
	if !strings.Contains(rep.Signer, "Gentoo test release key") {
		t.Errorf("signer %q", rep.Signer)
	}
	// Every regular file outside the IGNOREd and dot directories is
	// hashed once (the top-level Manifest included).
	want := 0
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		top := strings.SplitN(rel, "/", 2)[0]
		if d.IsDir() && (top == "distfiles" || top == "packages" || top == "local" || strings.HasPrefix(d.Name(), ".") && rel != ".") {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() && !strings.HasPrefix(d.Name(), ".") {
			want++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Files reached through symlinks are hashed once more per link.
	if rep.Files < want {
		t.Errorf("hashed %d files, the tree has %d", rep.Files, want)
	}
	if rep.Manifests < 10 {
		t.Errorf("only %d Manifests loaded", rep.Manifests)
	}

	// The directories Portage does not sync are IGNOREd: their absence is
	// fine.
	for _, d := range []string{"distfiles", "packages", "local"} {
		if err := os.RemoveAll(filepath.Join(dir, d)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Verify(context.Background(), dir, opts(publicRing(t, key))); err != nil {
		t.Fatal("without the IGNOREd directories:", err)
	}
	// Without a key ring, digests and coverage are checked, not the signature.
	if _, err := Verify(context.Background(), dir, Options{}); err != nil {
		t.Fatal("unsigned check:", err)
	}
}

// firstFile returns a file of the tree whose name ends in suffix.
func firstFile(t *testing.T, dir, suffix string) string {
	t.Helper()
	var found string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if found == "" && err == nil && d.Type().IsRegular() && strings.HasSuffix(p, suffix) {
			found, _ = filepath.Rel(dir, p)
		}
		return nil
	})
	if found == "" {
		t.Fatalf("no *%s in the tree", suffix)
	}
	return found
}

func flipByte(t *testing.T, p string, off int) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[off%len(b)] ^= 0x20
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyRefusesTamperedTrees(t *testing.T) {
	key, other := keys(t)
	ring := publicRing(t, key)
	ctx := context.Background()

	t.Run("changed byte in an ebuild", func(t *testing.T) {
		dir := signedTree(t, key, nil)
		eb := firstFile(t, dir, ".ebuild")
		flipByte(t, filepath.Join(dir, eb), 10)
		_, err := Verify(ctx, dir, opts(ring))
		wantRefused(t, err, eb, "BLAKE2B mismatch")
	})
	t.Run("missing file", func(t *testing.T) {
		dir := signedTree(t, key, nil)
		eb := firstFile(t, dir, ".ebuild")
		os.Remove(filepath.Join(dir, eb))
		_, err := Verify(ctx, dir, opts(ring))
		wantRefused(t, err, eb, "missing (listed in "+filepath.Dir(eb)+"/Manifest)")
	})
	t.Run("extra file", func(t *testing.T) {
		dir := signedTree(t, key, nil)
		eb := firstFile(t, dir, ".ebuild")
		extra := filepath.Join(filepath.Dir(eb), "evil-9999.ebuild")
		os.WriteFile(filepath.Join(dir, extra), []byte("EAPI=8\n"), 0o644)
		_, err := Verify(ctx, dir, opts(ring))
		wantRefused(t, err, extra, "not listed in any Manifest")
	})
	t.Run("extra file in a new directory", func(t *testing.T) {
		dir := signedTree(t, key, nil)
		os.MkdirAll(filepath.Join(dir, "eclass/sub"), 0o755)
		os.WriteFile(filepath.Join(dir, "eclass/sub/x.eclass"), []byte("x\n"), 0o644)
		_, err := Verify(ctx, dir, opts(ring))
		wantRefused(t, err, "eclass/sub/x.eclass", "not listed in any Manifest")
	})
	t.Run("file grown", func(t *testing.T) {
		dir := signedTree(t, key, nil)
		p := filepath.Join(dir, "licenses/LICENSE-0.0")
		f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
		f.WriteString("more")
		f.Close()
		_, err := Verify(ctx, dir, opts(ring))
		wantRefused(t, err, "licenses/LICENSE-0.0", "size ")
	})
	t.Run("corrupted gz sub-Manifest", func(t *testing.T) {
		dir := signedTree(t, key, nil)
		eb := firstFile(t, dir, ".ebuild")
		cat := strings.SplitN(eb, "/", 2)[0]
		flipByte(t, filepath.Join(dir, cat, "Manifest.gz"), 40)
		_, err := Verify(ctx, dir, opts(ring))
		wantRefused(t, err, cat+"/Manifest.gz", "BLAKE2B mismatch (Manifest.files.gz says")
		// One problem, not one per file of the category.
		if ve := err.(*Error); ve.Total != 1 {
			t.Fatalf("%d problems: %v", ve.Total, ve.Problems)
		}
	})
	t.Run("expired signature", func(t *testing.T) {
		dir := signedTree(t, key, &packet.Config{Time: at(treeTime.Add(-2 * time.Hour)), SigLifetimeSecs: 3600})
		_, err := Verify(ctx, dir, opts(ring))
		wantRefused(t, err, "Manifest", "has expired")
	})
	t.Run("expired key", func(t *testing.T) {
		old, err := testtree.NewSigningKey("Expired key", "old@example.org", &packet.Config{Time: at(treeTime.Add(-48 * time.Hour)), KeyLifetimeSecs: 24 * 3600})
		if err != nil {
			t.Fatal(err)
		}
		dir := signedTree(t, old, &packet.Config{Time: at(treeTime.Add(-25 * time.Hour))})
		_, err = Verify(ctx, dir, opts(publicRing(t, old)))
		wantRefused(t, err, "Manifest", "signing key")
		wantRefused(t, err, "Manifest", "has expired")
	})
	t.Run("bad signature", func(t *testing.T) {
		dir := signedTree(t, key, nil)
		p := filepath.Join(dir, "Manifest")
		b, _ := os.ReadFile(p)
		b = bytes.Replace(b, []byte("TIMESTAMP 2026-12-01T10:00:00Z"), []byte("TIMESTAMP 2026-12-01T10:30:00Z"), 1)
		os.WriteFile(p, b, 0o644)
		_, err := Verify(ctx, dir, opts(ring))
		wantRefused(t, err, "Manifest", "bad signature")
	})
	t.Run("wrong key", func(t *testing.T) {
		dir := signedTree(t, other, nil)
		_, err := Verify(ctx, dir, opts(ring))
		wantRefused(t, err, "Manifest", "signature by unknown key")
	})
	t.Run("unsigned top-level Manifest", func(t *testing.T) {
		dir := signedTree(t, nil, nil)
		_, err := Verify(ctx, dir, opts(ring))
		wantRefused(t, err, "Manifest", "not OpenPGP signed")
	})
	t.Run("unsigned data after the signature", func(t *testing.T) {
		dir := signedTree(t, key, nil)
		f, _ := os.OpenFile(filepath.Join(dir, "Manifest"), os.O_APPEND|os.O_WRONLY, 0)
		f.WriteString("IGNORE app-misc\n")
		f.Close()
		_, err := Verify(ctx, dir, opts(ring))
		wantRefused(t, err, "Manifest", "data after the OpenPGP signature")
	})
	t.Run("older TIMESTAMP than the published tree", func(t *testing.T) {
		dir := signedTree(t, key, nil)
		o := opts(ring)
		o.NotBefore = treeTime.Add(time.Minute)
		_, err := Verify(ctx, dir, o)
		wantRefused(t, err, "Manifest", "older than the published tree's")
		o.NotBefore = treeTime // the same tree again is fine
		if _, err := Verify(ctx, dir, o); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("too old TIMESTAMP", func(t *testing.T) {
		dir := signedTree(t, key, nil)
		o := opts(ring)
		o.Now = at(treeTime.Add(25 * time.Hour))
		_, err := Verify(ctx, dir, o)
		wantRefused(t, err, "Manifest", "more than the maximum age 24h0m0s")
		o.MaxAge = 0 // check disabled
		if _, err := Verify(ctx, dir, o); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("listed file replaced by a directory", func(t *testing.T) {
		dir := signedTree(t, key, nil)
		p := filepath.Join(dir, "licenses/LICENSE-0.1")
		os.Remove(p)
		os.Mkdir(p, 0o755)
		_, err := Verify(ctx, dir, opts(ring))
		wantRefused(t, err, "licenses/LICENSE-0.1", "is a directory")
	})
	t.Run("several problems", func(t *testing.T) {
		dir := signedTree(t, key, nil)
		os.WriteFile(filepath.Join(dir, "eclass/extra.eclass"), nil, 0o644)
		os.Remove(filepath.Join(dir, "licenses/LICENSE-0.0"))
		_, err := Verify(ctx, dir, opts(ring))
		wantRefused(t, err, "eclass/extra.eclass", "not listed")
		wantRefused(t, err, "licenses/LICENSE-0.0", "missing (listed in licenses/Manifest.gz)")
		if !strings.HasPrefix(err.Error(), "2 problems: ") {
			t.Fatalf("message %q", err)
		}
	})
}

func TestLoadKeyringBinaryAndErrors(t *testing.T) {
	key, _ := keys(t)
	var bin bytes.Buffer
	if err := key.Serialize(&bin); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "key.gpg")
	os.WriteFile(p, bin.Bytes(), 0o644)
	kr, err := LoadKeyring(p)
	if err != nil || len(kr) != 1 {
		t.Fatalf("binary key: %v %v", kr, err)
	}
	os.WriteFile(p, []byte("not a key\n"), 0o644)
	if _, err := LoadKeyring(p); err == nil {
		t.Fatal("garbage accepted as a key")
	}
	if _, err := LoadKeyring(filepath.Join(t.TempDir(), "missing.asc")); err == nil {
		t.Fatal("missing key file accepted")
	}
}

func TestVerifyCancelled(t *testing.T) {
	key, _ := keys(t)
	dir := signedTree(t, key, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Verify(ctx, dir, opts(publicRing(t, key))); err == nil {
		t.Fatal("cancelled verification succeeded")
	}
}
