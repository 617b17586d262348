package gentoo

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// An index in the shape Portage writes (header keys sorted, a blank line
// after every block, translated keys DESC/MTIME/REPO).
const samplePackages = `ARCH: amd64
CHOST: x86_64-pc-linux-gnu
PACKAGES: 2
TIMESTAMP: 1700000000
VERSION: 0

BUILD_ID: 1
BUILD_TIME: 1699999000
CPV: app-misc/hello-1.0
DEFINED_PHASES: compile install
EAPI: 8
KEYWORDS: amd64 ~arm64
MD5: 0123456789abcdef0123456789abcdef
MTIME: 1699999001
PATH: app-misc/hello/hello-1.0-1.gpkg.tar
SHA1: 0123456789abcdef0123456789abcdef01234567
SIZE: 20480
USE: abi_x86_64 amd64 elibc_glibc

CPV: sys-apps/which-2.21
DESC: Prints out location of specified executables
MD5: fedcba9876543210fedcba9876543210
MTIME: 1600000000
REPO: gentoo
SHA1: fedcba9876543210fedcba9876543210fedcba98
SIZE: 31337
SLOT: 0

`

func TestReadPackagesSample(t *testing.T) {
	ix, err := ReadPackages(strings.NewReader(samplePackages))
	if err != nil {
		t.Fatal(err)
	}
	if ix.Header[PkgKeyPackages] != "2" || ix.Header[PkgKeyTimestamp] != "1700000000" || ix.Header[PkgKeyVersion] != "0" || ix.Header["CHOST"] != "x86_64-pc-linux-gnu" {
		t.Fatalf("header = %v", ix.Header)
	}
	if len(ix.Packages) != 2 {
		t.Fatalf("got %d packages, want 2", len(ix.Packages))
	}
	p := ix.Packages[0]
	want := map[string]string{
		PkgKeyCPV: "app-misc/hello-1.0", PkgKeyBuildID: "1", PkgKeyPath: "app-misc/hello/hello-1.0-1.gpkg.tar",
		PkgKeySize: "20480", "KEYWORDS": "amd64 ~arm64", "USE": "abi_x86_64 amd64 elibc_glibc",
	}
	for k, v := range want {
		if p[k] != v {
			t.Errorf("%s = %q, want %q", k, p[k], v)
		}
	}
	if ix.Packages[1][PkgKeyDesc] != "Prints out location of specified executables" {
		t.Errorf("DESC = %q", ix.Packages[1][PkgKeyDesc])
	}
	// Written back, the index is byte-identical (keys sorted, blank lines).
	var buf bytes.Buffer
	if _, err := ix.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if buf.String() != samplePackages {
		t.Fatalf("rewritten index differs:\n%s\nwant:\n%s", buf.String(), samplePackages)
	}
}

func TestPackagesRoundTrip(t *testing.T) {
	ix := &PackagesIndex{
		Header: PackageFields{"CHOST": "aarch64-unknown-linux-gnu", PkgKeyURI: "http://binhost.lan/binpkgs"},
		Packages: []PackageFields{
			{PkgKeyCPV: "dev-libs/b-2", PkgKeyBuildID: "10", PkgKeyPath: "dev-libs/b/b-2-10.gpkg.tar", PkgKeySize: "5"},
			{PkgKeyCPV: "dev-libs/b-2", PkgKeyBuildID: "9", PkgKeyPath: "dev-libs/b/b-2-9.gpkg.tar", PkgKeySize: "6"},
			{PkgKeyCPV: "dev-libs/a-1", PkgKeyPath: "dev-libs/a-1.tbz2", PkgKeySize: "7", "RDEPEND": "", "IUSE": "+foo bar"},
		},
	}
	ix.Sort()
	ix.Stamp(time.Unix(1234567890, 0))
	var buf bytes.Buffer
	n, err := ix.WriteTo(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Errorf("WriteTo returned %d, wrote %d", n, buf.Len())
	}
	if strings.Contains(buf.String(), "RDEPEND") {
		t.Error("empty value was written")
	}
	if !strings.HasPrefix(buf.String(), "CHOST: aarch64-unknown-linux-gnu\nPACKAGES: 3\nTIMESTAMP: 1234567890\nURI: http://binhost.lan/binpkgs\nVERSION: 0\n\n") {
		t.Errorf("header block:\n%s", buf.String())
	}
	got, err := ReadPackages(&buf)
	if err != nil {
		t.Fatal(err)
	}
	order := []string{}
	for _, p := range got.Packages {
		order = append(order, p[PkgKeyPath])
	}
	if want := []string{"dev-libs/a-1.tbz2", "dev-libs/b/b-2-9.gpkg.tar", "dev-libs/b/b-2-10.gpkg.tar"}; !reflect.DeepEqual(order, want) {
		t.Errorf("order = %v, want %v", order, want)
	}
	delete(ix.Packages[0], "RDEPEND")
	if !reflect.DeepEqual(got, ix) {
		t.Errorf("round trip:\n got %v\nwant %v", got, ix)
	}
}

func TestPackagesReaderLenient(t *testing.T) {
	// No trailing blank line, several blank lines, a block without CPV, a
	// line without a colon, a value without the space, CRLF line ends.
	in := "TIMESTAMP: 5\nVERSION: 0\n\n\n\nPATH: x.tbz2\n\nCPV: a/b-1\nnocolon\nSIZE:9\r\nSLOT: \n\nCPV: a/c-2"
	pr := NewPackagesReader(strings.NewReader(in))
	h, err := pr.Header()
	if err != nil || h[PkgKeyTimestamp] != "5" {
		t.Fatalf("header %v, %v", h, err)
	}
	b, err := pr.Next()
	if err != nil {
		t.Fatal(err)
	}
	if b[PkgKeyCPV] != "a/b-1" {
		t.Errorf("first block %v", b)
	}
	// Portage drops the one character after the colon, whatever it is.
	if v, ok := b[PkgKeySize]; !ok || v != "" {
		t.Errorf("SIZE = %q, %v; want \"\" (Portage drops the first character)", v, ok)
	}
	if _, ok := b["nocolon"]; ok || len(b) != 3 {
		t.Errorf("first block %v", b)
	}
	b, err = pr.Next()
	if err != nil || b[PkgKeyCPV] != "a/c-2" {
		t.Fatalf("second block %v, %v", b, err)
	}
	if _, err := pr.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after last block: %v, want io.EOF", err)
	}
}

func TestPackagesEmptyAndHeaderOnly(t *testing.T) {
	for _, in := range []string{"", "\n", "VERSION: 0\n", "VERSION: 0\n\n"} {
		ix, err := ReadPackages(strings.NewReader(in))
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if len(ix.Packages) != 0 {
			t.Errorf("%q: %d packages", in, len(ix.Packages))
		}
	}
}

func TestPackagesLongLine(t *testing.T) {
	in := "VERSION: 0\n\nCPV: a/b-1\nUSE: " + strings.Repeat("x", MaxPackagesLine) + "\n\n"
	if _, err := ReadPackages(strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("err = %v, want a line length error", err)
	}
}

func TestPackagesWriteRejects(t *testing.T) {
	for _, b := range []PackageFields{
		{PkgKeyCPV: "a/b-1", "USE": "x\ny"},
		{PkgKeyCPV: "a/b-1", "BAD:KEY": "v"},
		{PkgKeyCPV: "a/b-1", "": "v"},
	} {
		ix := &PackagesIndex{Header: PackageFields{}, Packages: []PackageFields{b}}
		if _, err := ix.WriteTo(io.Discard); err == nil {
			t.Errorf("%v: no error", b)
		}
	}
}

// FuzzPackages: whatever is read writes back to an index that reads the
// same (when it can be written at all).
func FuzzPackages(f *testing.F) {
	f.Add(samplePackages)
	f.Add("CPV: a/b-1\n\n\n\nCPV: c/d-2\nX:\n")
	f.Add("\n\nVERSION: 0")
	f.Fuzz(func(t *testing.T, in string) {
		ix, err := ReadPackages(strings.NewReader(in))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if _, err := ix.WriteTo(&buf); err != nil {
			return // e.g. a key with spaces: not representable
		}
		again, err := ReadPackages(&buf)
		if err != nil {
			t.Fatalf("rewritten index unreadable: %v", err)
		}
		drop := func(b PackageFields) {
			for k, v := range b {
				if v == "" {
					delete(b, k)
				}
			}
		}
		drop(ix.Header)
		var kept []PackageFields
		for _, p := range ix.Packages {
			drop(p)
			if p[PkgKeyCPV] != "" {
				kept = append(kept, p)
			}
		}
		ix.Packages = kept
		if !reflect.DeepEqual(ix.Header, again.Header) || len(ix.Packages) != len(again.Packages) {
			t.Fatalf("round trip:\n%v\n%v", ix, again)
		}
		for i := range ix.Packages {
			if !reflect.DeepEqual(ix.Packages[i], again.Packages[i]) {
				t.Fatalf("entry %d: %v != %v", i, ix.Packages[i], again.Packages[i])
			}
		}
	})
}
