package gentoo

import (
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/blake2b"
)

// distOf computes the real DIST entry of data.
func distOf(name string, data []byte) Dist {
	b2 := blake2b.Sum512(data)
	sh := sha512.Sum512(data)
	return Dist{Name: name, Size: int64(len(data)), BLAKE2B: b2[:], SHA512: sh[:]}
}

func TestParseManifestPackage(t *testing.T) {
	a := distOf("foo-1.0.tar.gz", []byte("foo one"))
	b := distOf("foo-2.0.tar.xz", []byte("foo two, longer"))
	h := strings.Repeat("ab", 64)
	text := strings.Join([]string{
		"AUX foo.patch 12 BLAKE2B " + h + " SHA512 " + h,
		FormatDistLine(a),
		"EBUILD foo-1.0.ebuild 900 BLAKE2B " + h + " SHA512 " + h,
		"MISC metadata.xml 300 BLAKE2B " + h + " SHA512 " + h,
		"DATA files/x.conf 7 SHA256 " + strings.Repeat("cd", 32) + " WHIRLPOOL " + strings.Repeat("ef", 64),
		"",
		// unknown hash names are kept, BLAKE2B/SHA512 decoded
		"DIST foo-2.0.tar.xz 15 SHA256 " + strings.Repeat("01", 32) + " BLAKE2B " + strings.ToUpper(hex.EncodeToString(b.BLAKE2B)) + " SHA512 " + hex.EncodeToString(b.SHA512) + "\r",
		// garbage
		"this is not a manifest line",
		"DIST bad-size.tar.gz -5 BLAKE2B " + h,
		"DIST odd.tar.gz 10 BLAKE2B",
		"DIST badhex.tar.gz 10 BLAKE2B zz" + h[2:],
		"DIST short.tar.gz 10 BLAKE2B abcd",
		"DIST sub/dir.tar.gz 10 BLAKE2B " + h,
		"DIST",
		"dist lower.tar.gz 10",
		"NEWTAG something 5 FUTUREHASH 00ff",
	}, "\n")
	m, err := ParseManifest(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if m.Signed {
		t.Error("plain Manifest reported as signed")
	}
	if m.BadCount != 8 || len(m.Bad) != 8 {
		t.Errorf("BadCount = %d (%q), want 8", m.BadCount, m.Bad)
	}
	var tags []string
	for _, e := range m.Entries {
		tags = append(tags, e.Tag)
	}
	if got := strings.Join(tags, " "); got != "AUX DIST EBUILD MISC DATA DIST NEWTAG" {
		t.Errorf("tags = %s", got)
	}
	ds := m.Dists()
	if len(ds) != 2 {
		t.Fatalf("Dists = %d, want 2", len(ds))
	}
	for i, want := range []Dist{a, b} {
		got := ds[i]
		if got.Name != want.Name || got.Size != want.Size || !bytes.Equal(got.BLAKE2B, want.BLAKE2B) || !bytes.Equal(got.SHA512, want.SHA512) {
			t.Errorf("dist %d = %+v, want %+v", i, got, want)
		}
	}
	if e := m.Entries[4]; e.Path != "files/x.conf" || e.Size != 7 || len(e.Hashes) != 2 || e.Hashes[1].Name != "WHIRLPOOL" {
		t.Errorf("DATA entry = %+v", e)
	}
}

func TestParseManifestSigned(t *testing.T) {
	h := strings.Repeat("12", 64)
	text := `-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA512

TIMESTAMP 2026-11-24T10:00:00Z
IGNORE distfiles
IGNORE packages
MANIFEST app-misc/Manifest.gz 1234 BLAKE2B ` + h + ` SHA512 ` + h + `
- -----dash escaped line is not an entry
DIST signed.tar.gz 3 BLAKE2B ` + h + `
-----BEGIN PGP SIGNATURE-----

iQIzBAEBCgAdFiEE
DIST fake-from-signature.tar.gz 1 BLAKE2B ` + h + `
=abcd
-----END PGP SIGNATURE-----
`
	m, err := ParseManifest(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if !m.Signed {
		t.Error("Signed = false")
	}
	if len(m.Entries) != 5 {
		t.Fatalf("entries = %+v", m.Entries)
	}
	if e := m.Entries[0]; e.Tag != TagTimestamp || e.Time.Format("2006-01-02 15:04:05") != "2026-11-24 10:00:00" {
		t.Errorf("timestamp = %+v", e)
	}
	if e := m.Entries[3]; e.Tag != TagManifest || e.Path != "app-misc/Manifest.gz" || e.Size != 1234 {
		t.Errorf("MANIFEST = %+v", e)
	}
	ds := m.Dists()
	if len(ds) != 1 || ds[0].Name != "signed.tar.gz" {
		t.Errorf("dists = %+v, want only signed.tar.gz", ds)
	}
	if m.BadCount != 1 { // the dash-escaped line
		t.Errorf("BadCount = %d (%q)", m.BadCount, m.Bad)
	}
}

func TestReadManifestFileGzip(t *testing.T) {
	dir := t.TempDir()
	d := distOf("gz-1.tar.gz", []byte("compressed manifest"))
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(FormatDistLine(d) + "\n"))
	zw.Close()
	p := filepath.Join(dir, "Manifest.gz")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := ReadManifestFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if ds := m.Dists(); len(ds) != 1 || ds[0].Name != d.Name {
		t.Errorf("dists = %+v", ds)
	}
	// Not gzip: a clear error.
	os.WriteFile(p, []byte("DIST x 1\n"), 0o644)
	if _, err := ReadManifestFile(p); err == nil {
		t.Error("plain text named .gz parsed without error")
	}
	if _, err := ReadManifestFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestParseManifestLongLine(t *testing.T) {
	_, err := ParseManifest(strings.NewReader("DIST " + strings.Repeat("a", 100<<10) + " 1\n"))
	if err == nil {
		t.Fatal("a 100 KiB line parsed without error")
	}
}

func TestPathEscapes(t *testing.T) {
	for in, want := range map[string]string{
		`plain.tar.gz`:          "plain.tar.gz",
		`with\x20space.tar.gz`:  "with space.tar.gz",
		`back\x5Cslash`:         `back\slash`,
		`nbsp\u00A0x`:           "nbsp\u00a0x",
		`emoji\U0001F600.tar`:   "emoji\U0001F600.tar",
		`utf8-ünïcode-1.tar.gz`: "utf8-ünïcode-1.tar.gz",
	} {
		got, err := unescapePath(in)
		if err != nil || got != want {
			t.Errorf("unescape(%q) = %q, %v; want %q", in, got, err, want)
		}
		if back, _ := unescapePath(escapePath(want)); back != want {
			t.Errorf("escape round trip of %q: %q", want, back)
		}
	}
	for _, bad := range []string{`a\`, `a\q`, `a\x4`, `a\xZZ`, `a\xFF`, `a\U7FFFFFFF`, "bad\xff"} {
		if got, err := unescapePath(bad); err == nil {
			t.Errorf("unescape(%q) = %q, want error", bad, got)
		}
	}
	// A DIST line with an escaped space parses to the real name.
	d := distOf("a b.tar", []byte("x"))
	m, _ := ParseManifest(strings.NewReader(FormatDistLine(d)))
	if ds := m.Dists(); len(ds) != 1 || ds[0].Name != "a b.tar" {
		t.Errorf("escaped DIST = %+v (bad %q)", ds, m.Bad)
	}
}

func TestVerifyFile(t *testing.T) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("lanmirror distfile "), 5000)
	d := distOf("v-1.tar.gz", data)
	p := filepath.Join(dir, "v-1.tar.gz")
	os.WriteFile(p, data, 0o644)
	if err := VerifyFile(p, d); err != nil {
		t.Fatalf("good file: %v", err)
	}

	var me *MismatchError
	// Size mismatch.
	os.WriteFile(p, data[:len(data)-1], 0o644)
	err := VerifyFile(p, d)
	if !errors.As(err, &me) || me.What != "size" || me.Want != "95000" || me.Got != "94999" {
		t.Errorf("short file: %v", err)
	} else if !strings.Contains(err.Error(), "size 94999, Manifest says 95000") {
		t.Errorf("size message: %v", err)
	}

	// Right size, wrong bytes.
	bad := bytes.Clone(data)
	bad[1234] ^= 1
	os.WriteFile(p, bad, 0o644)
	err = VerifyFile(p, d)
	if !errors.As(err, &me) || me.What != HashBLAKE2B {
		t.Errorf("corrupt file: %v", err)
	} else if !strings.Contains(err.Error(), "BLAKE2B digest") || me.Want != hex.EncodeToString(d.BLAKE2B) {
		t.Errorf("digest message: %v (%+v)", err, me)
	}
	// Only SHA512 in the entry: that one is checked.
	onlySHA := d
	onlySHA.BLAKE2B = nil
	if err := VerifyFile(p, onlySHA); !errors.As(err, &me) || me.What != HashSHA512 {
		t.Errorf("SHA512-only entry: %v", err)
	}
	// No digests at all: size only.
	sizeOnly := Dist{Name: d.Name, Size: d.Size}
	if err := VerifyFile(p, sizeOnly); err != nil {
		t.Errorf("size-only entry: %v", err)
	}
	if err := VerifyFile(dir, d); err == nil {
		t.Error("directory verified")
	}
	if err := VerifyFile(filepath.Join(dir, "nope"), d); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}

	// DigestReader agrees with the reference digests.
	got, err := DigestReader(d.Name, bytes.NewReader(data))
	if err != nil || got.Size != d.Size || !bytes.Equal(got.BLAKE2B, d.BLAKE2B) || !bytes.Equal(got.SHA512, d.SHA512) {
		t.Errorf("DigestReader = %+v, %v", got, err)
	}
}

// FuzzParseManifest: any input parses without panic; every DIST entry has
// an acceptable name, a non-negative size and digests of the right length.
func FuzzParseManifest(f *testing.F) {
	h := strings.Repeat("ab", 64)
	f.Add("DIST a.tar.gz 10 BLAKE2B " + h + " SHA512 " + h + "\n")
	f.Add("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nTIMESTAMP 2026-01-01T00:00:00Z\n- -x\n-----BEGIN PGP SIGNATURE-----\nx\n-----END PGP SIGNATURE-----\n")
	f.Add("AUX x 1 SHA256 00\nDIST a\\x20b 1\nIGNORE distfiles\nMANIFEST a/Manifest.gz 5 BLAKE2B " + h)
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseManifest(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, d := range m.Dists() {
			if checkDistName(d.Name) != nil || d.Size < 0 {
				t.Fatalf("bad DIST accepted: %+v", d)
			}
			if (d.BLAKE2B != nil && len(d.BLAKE2B) != 64) || (d.SHA512 != nil && len(d.SHA512) != 64) {
				t.Fatalf("bad digest length: %+v", d)
			}
		}
	})
}
