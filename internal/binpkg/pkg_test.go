package binpkg

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/lanmirror/lanmirror/internal/testutil"
)

// Test packages are built here, from the format descriptions (xpak(5),
// GLEP 78), not with Portage.

// meta is the metadata of a test package.
type meta map[string]string

// xpakSegment encodes metadata as an xpak segment, entries in sorted order.
func xpakSegment(md meta) []byte {
	var index, data bytes.Buffer
	u32 := func(b *bytes.Buffer, v int) { binary.Write(b, binary.BigEndian, uint32(v)) }
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range md {
			if !yield(k) {
				return
			}
		}
	}) {
		u32(&index, len(k))
		index.WriteString(k)
		u32(&index, data.Len())
		u32(&index, len(md[k]))
		data.WriteString(md[k])
	}
	var seg bytes.Buffer
	seg.WriteString("XPAKPACK")
	u32(&seg, index.Len())
	u32(&seg, data.Len())
	seg.Write(index.Bytes())
	seg.Write(data.Bytes())
	seg.WriteString("XPAKSTOP")
	return seg.Bytes()
}

// tarOf builds an uncompressed tar of name -> content, in the given order.
func tarOf(t testing.TB, names []string, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), ModTime: time.Unix(1700000000, 0), Format: tar.FormatUSTAR}); err != nil {
			t.Fatal(err)
		}
		tw.Write(files[n])
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// xpakPackage builds a .tbz2: a payload (an uncompressed tar stands in for
// the tar.bz2; nothing reads it) then the xpak segment, its length, "STOP".
func xpakPackage(t testing.TB, md meta) []byte {
	payload := tarOf(t, []string{"usr/bin/hello"}, map[string][]byte{"usr/bin/hello": []byte("#!/bin/sh\necho hello\n")})
	seg := xpakSegment(md)
	out := append(payload, seg...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(seg)))
	return append(out, "STOP"...)
}

// compress compresses b for a gpkg member extension.
func compress(t testing.TB, ext string, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch ext {
	case "":
		return b
	case ".gz":
		zw := gzip.NewWriter(&buf)
		zw.Write(b)
		zw.Close()
	case ".zst":
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		zw.Write(b)
		zw.Close()
	case ".xz":
		zw, err := xz.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		zw.Write(b)
		zw.Close()
	case ".bz2":
		// No bzip2 writer in Go: the stock bzip2 tool, when installed.
		testutil.RequireTool(t, "bzip2")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bzip2", "-c")
		cmd.Stdin = bytes.NewReader(b)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		return out
	default:
		return b // an unsupported method: content does not matter
	}
	return buf.Bytes()
}

// gpkgPackage builds a gpkg: basename/gpkg-1, basename/metadata.tar<ext>,
// basename/image.tar<ext>, basename/Manifest.
func gpkgPackage(t testing.TB, basename, ext string, md meta) []byte {
	var names []string
	files := map[string][]byte{}
	for k, v := range md {
		names = append(names, "metadata/"+k)
		files["metadata/"+k] = []byte(v)
	}
	slices.Sort(names)
	// A large unwanted entry, as environment.bz2 is.
	names = append(names, "metadata/environment.bz2")
	env := maxMetaValue + 1
	if ext == ".xz" || ext == ".bz2" {
		env = 4096 // slow compressors under -race: the size limit is tested with the others
	}
	files["metadata/environment.bz2"] = bytes.Repeat([]byte("x"), env)
	metaTar := compress(t, ext, tarOf(t, names, files))
	image := compress(t, ext, tarOf(t, []string{"image/usr/bin/x"}, map[string][]byte{"image/usr/bin/x": []byte("binary")}))
	outer := []string{basename + "/gpkg-1", basename + "/metadata.tar" + ext, basename + "/image.tar" + ext, basename + "/Manifest"}
	return tarOf(t, outer, map[string][]byte{
		outer[0]: nil, outer[1]: metaTar, outer[2]: image,
		outer[3]: []byte("DATA gpkg-1 0\n"),
	})
}

func TestReadXpakManPageExample(t *testing.T) {
	// The two-entry example of xpak(5), with a tbz2 trailer around it.
	seg := []byte("XPAKPACK\x00\x00\x00\x20\x00\x00\x00\x10" +
		"\x00\x00\x00\x04fil1\x00\x00\x00\x00\x00\x00\x00\x08" +
		"\x00\x00\x00\x04fil2\x00\x00\x00\x08\x00\x00\x00\x08" +
		"ddDddDddjjJjjJjjXPAKSTOP")
	if !bytes.Equal(seg, xpakSegment(meta{"fil1": "ddDddDdd", "fil2": "jjJjjJjj"})) {
		t.Fatal("test encoder differs from the man page example")
	}
	file := append([]byte("tarball bytes"), seg...)
	file = binary.BigEndian.AppendUint32(file, uint32(len(seg)))
	file = append(file, "STOP"...)
	md, err := ReadXpak(bytes.NewReader(file), int64(len(file)), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{"fil1": []byte("ddDddDdd"), "fil2": []byte("jjJjjJjj")}
	if !reflect.DeepEqual(md, want) {
		t.Fatalf("got %q, want %q", md, want)
	}
	md, err = ReadXpak(bytes.NewReader(file), int64(len(file)), func(n string) bool { return n == "fil2" })
	if err != nil || len(md) != 1 || string(md["fil2"]) != "jjJjjJjj" {
		t.Fatalf("filtered: %q, %v", md, err)
	}
}

func TestReadXpakPackage(t *testing.T) {
	in := meta{"CATEGORY": "app-misc\n", "PF": "hello-1.0\n", "SLOT": "0\n", "USE": "amd64  nls\n", "environment.bz2": strings.Repeat("e", maxMetaValue+1)}
	b := xpakPackage(t, in)
	md, err := ReadXpak(bytes.NewReader(b), int64(len(b)), wantMeta)
	if err != nil {
		t.Fatal(err)
	}
	if string(md["CATEGORY"]) != "app-misc\n" || string(md["USE"]) != "amd64  nls\n" || md["environment.bz2"] != nil {
		t.Fatalf("got %q", md)
	}
}

func TestReadXpakBroken(t *testing.T) {
	good := xpakPackage(t, meta{"CATEGORY": "a", "PF": "b-1", "SLOT": "0"})
	cases := map[string][]byte{
		"short":     []byte("STOP"),
		"no STOP":   append(slices.Clone(good[:len(good)-4]), "STAP"...),
		"no tail":   bytes.Replace(slices.Clone(good), []byte("XPAKSTOP"), []byte("XPAKSTAP"), 1),
		"no head":   bytes.Replace(slices.Clone(good), []byte("XPAKPACK"), []byte("XPAKPACX"), 1),
		"huge len":  append(append(slices.Clone(good[:len(good)-8]), 0xff, 0xff, 0xff, 0xff), "STOP"...),
		"plain tar": tarOf(t, []string{"x"}, map[string][]byte{"x": []byte("y")}),
	}
	// An index entry whose name runs past the index.
	bad := slices.Clone(good)
	i := bytes.Index(bad, []byte("XPAKPACK"))
	binary.BigEndian.PutUint32(bad[i+16:], 1000)
	cases["bad name len"] = bad
	for name, b := range cases {
		if _, err := ReadXpak(bytes.NewReader(b), int64(len(b)), nil); !errors.Is(err, ErrNoXpak) {
			t.Errorf("%s: err = %v, want ErrNoXpak", name, err)
		}
	}
}

func TestReadGpkgMetadata(t *testing.T) {
	in := meta{"CATEGORY": "dev-util\n", "PF": "bar-3.1\n", "SLOT": "0/3.1\n", "KEYWORDS": "amd64 ~arm64\n", "BUILD_ID": "2\n"}
	for _, ext := range []string{"", ".gz", ".zst", ".xz", ".bz2"} {
		b := gpkgPackage(t, "bar-3.1-2", ext, in)
		md, err := ReadGpkgMetadata(bytes.NewReader(b), wantMeta)
		if err != nil {
			t.Fatalf("%q: %v", ext, err)
		}
		got := meta{}
		for k, v := range md {
			got[k] = string(v)
		}
		if !reflect.DeepEqual(got, in) {
			t.Errorf("%q: got %q, want %q", ext, got, in)
		}
	}
	b := gpkgPackage(t, "bar-3.1-2", ".lz4", in)
	if _, err := ReadGpkgMetadata(bytes.NewReader(b), nil); !errors.Is(err, ErrUnsupportedCompression) {
		t.Errorf("lz4: err = %v, want ErrUnsupportedCompression", err)
	}
	noMarker := tarOf(t, []string{"p/metadata.tar"}, map[string][]byte{"p/metadata.tar": tarOf(t, []string{"metadata/PF"}, map[string][]byte{"metadata/PF": []byte("x-1")})})
	if _, err := ReadGpkgMetadata(bytes.NewReader(noMarker), nil); !errors.Is(err, ErrNotGpkg) {
		t.Errorf("no marker: err = %v, want ErrNotGpkg", err)
	}
	noMeta := tarOf(t, []string{"p/gpkg-1"}, map[string][]byte{"p/gpkg-1": nil})
	if _, err := ReadGpkgMetadata(bytes.NewReader(noMeta), nil); !errors.Is(err, ErrNotGpkg) {
		t.Errorf("no metadata: err = %v, want ErrNotGpkg", err)
	}
	xp := xpakPackage(t, in)
	if _, err := ReadGpkgMetadata(bytes.NewReader(xp), nil); err == nil {
		t.Error("an xpak package read as gpkg")
	}
}

func TestEntryFromMetadataPlaces(t *testing.T) {
	md := map[string][]byte{"CATEGORY": []byte("dev-util\n"), "PF": []byte("bar-3.1-r1\n"), "SLOT": []byte("0\n"), "DESCRIPTION": []byte("A  bar\n"), "repository": []byte("gentoo\n")}
	ok := []string{"dev-util/bar-3.1-r1.tbz2", "All/bar-3.1-r1.tbz2", "dev-util/bar-3.1-r1.gpkg.tar", "dev-util/bar/bar-3.1-r1-7.gpkg.tar", "dev-util/bar/bar-3.1-r1-7.xpak"}
	for _, p := range ok {
		e, err := entryFromMetadata(md, p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if e["CPV"] != "dev-util/bar-3.1-r1" || e["DESC"] != "A bar" || e["REPO"] != "gentoo" {
			t.Errorf("%s: %v", p, e)
		}
		if strings.Count(p, "/") == 2 && e["BUILD_ID"] != "7" {
			t.Errorf("%s: BUILD_ID = %q", p, e["BUILD_ID"])
		}
	}
	bad := []string{"other/bar-3.1-r1.tbz2", "dev-util/baz-1.tbz2", "dev-util/bar-3.1-r1-7.tbz2", "dev-util/bar/bar-3.1-r1.xpak", "other/bar/bar-3.1-r1-7.gpkg.tar", "dev-util/bar/bar-3.1-r1-0.gpkg.tar", "dev-util/bar/bar-3.1-r1-x.gpkg.tar"}
	for _, p := range bad {
		if _, err := entryFromMetadata(md, p); err == nil {
			t.Errorf("%s: accepted", p)
		}
	}
	delete(md, "SLOT")
	if _, err := entryFromMetadata(md, ok[0]); err == nil {
		t.Error("no SLOT: accepted")
	}
}

// writeFile writes b at dir/rel with the given mtime.
func writeFile(t testing.TB, dir, rel string, b []byte, mtime time.Time) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}
