package flist

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/rsync/filter"
	"github.com/lanmirror/lanmirror/internal/rsync/wire"
	"github.com/lanmirror/lanmirror/internal/testutil"
)

// makeTree builds a tree with names that exercise the sort rules.
func makeTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := []string{
		"a", "a.b", "a-b", "b/x", "b/y/z", "b.c/q", "c d/e f", "ü/ö.txt", "zz", "metadata/timestamp.chk",
		"distfiles/big.tar", "app-misc/foo/foo-1.ebuild", "app-misc/foo/Manifest", "app-misc/foo-bar/x",
		"app-misc/foo/files/p.patch", "B", "_x", ".hidden",
	}
	for i, f := range files {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, bytes.Repeat([]byte{'x'}, i), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../../etc/passwd", filepath.Join(dir, "b", "out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("x", filepath.Join(dir, "b", "in")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "emptydir"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func openCache(t *testing.T, dir string, excludes []string) *Cache {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := NewCache(root, excludes, nil)
	t.Cleanup(func() {
		c.Close()
		root.Close()
	})
	return c
}

func names(l *List) []string {
	var out []string
	for _, f := range l.Files {
		out = append(out, f.Name)
	}
	return out
}

// stockListing runs a plain rsync daemon on loopback over dir and returns
// the names `rsync --list-only` prints for src at the given protocol.
func stockListing(t *testing.T, dir string, src string, proto int, extra ...string) []string {
	t.Helper()
	testutil.RequireTool(t, "rsync")
	tmp := t.TempDir()
	conf := filepath.Join(tmp, "rsyncd.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("use chroot = no\nread only = yes\n[mod]\npath = %s\n", dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	d := exec.Command("rsync", "--daemon", "--no-detach", "--address=127.0.0.1", fmt.Sprintf("--port=%d", port), "--config="+conf, "--log-file="+filepath.Join(tmp, "log"))
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Process.Kill(); d.Wait() })
	for i := 0; i < 100; i++ {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	args := append([]string{"--list-only", fmt.Sprintf("--protocol=%d", proto)}, extra...)
	args = append(args, fmt.Sprintf("rsync://127.0.0.1:%d/mod/%s", port, src))
	out, err := exec.Command("rsync", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("rsync %v: %v\n%s", args, err, out)
	}
	var res []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		// "drwxr-xr-x          4,096 2026/11/24 17:00:00 name"
		f := strings.SplitN(line, " ", -1)
		if len(f) < 4 {
			continue
		}
		// the name starts after the time field (HH:MM:SS)
		idx := strings.Index(line, ":")
		if idx < 0 || idx+7 > len(line) {
			continue
		}
		name := line[idx+7:]
		if i := strings.Index(name, " -> "); i >= 0 && line[0] == 'l' {
			name = name[:i]
		}
		res = append(res, name)
	}
	return res
}

func TestSortMatchesStockRsync(t *testing.T) {
	dir := makeTree(t)
	c := openCache(t, dir, nil)
	for _, proto := range []int{27, 28, 29, 30, 31} {
		for _, src := range []string{"", "b/", "app-misc", "metadata/timestamp.chk"} {
			want := stockListing(t, dir, src, proto, "-r", "-l")
			got, err := c.Select(context.Background(), Request{Paths: []string{src}, Recursive: true, Links: true, Protocol: proto})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(names(got), "\n") != strings.Join(want, "\n") {
				t.Errorf("proto %d src %q:\n got %q\nwant %q", proto, src, names(got), want)
			}
		}
	}
}

func TestFiltersAndServerExcludes(t *testing.T) {
	dir := makeTree(t)
	c := openCache(t, dir, []string{"/distfiles", "*.patch"})
	rules, err := filter.Parse([]string{"- /b", "- .hidden"}, 31)
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.Select(context.Background(), Request{Recursive: true, Links: true, Rules: rules, Protocol: 31})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names(l) {
		if strings.HasPrefix(n, "distfiles") || strings.HasSuffix(n, ".patch") || n == "b" || strings.HasPrefix(n, "b/") || n == ".hidden" {
			t.Errorf("excluded entry %q listed", n)
		}
	}
	if len(l.Files) < 10 || l.Files[0].Name != "." {
		t.Fatalf("unexpected list %q", names(l))
	}
	if _, err := c.Select(context.Background(), Request{Paths: []string{"distfiles/big.tar"}, Protocol: 31}); err == nil {
		t.Error("server-excluded file was selectable")
	}
	if _, err := c.Select(context.Background(), Request{Paths: []string{"../etc"}, Protocol: 31}); err == nil {
		t.Error("path escaping the module accepted")
	}
}

func TestCacheSharedAndRescan(t *testing.T) {
	dir := makeTree(t)
	c := openCache(t, dir, nil)
	ctx := context.Background()
	l1, _ := c.Select(ctx, Request{Recursive: true, Protocol: 31})
	l2, _ := c.Select(ctx, Request{Recursive: true, Protocol: 31})
	if len(l1.Files) == 0 || l1.Files[3] != l2.Files[3] {
		t.Error("module scan not shared between clients")
	}
	if err := os.WriteFile(filepath.Join(dir, "newfile"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c.Invalidate()
	l3, _ := c.Select(ctx, Request{Recursive: true, Protocol: 31})
	if len(l3.Files) != len(l1.Files)+1 {
		t.Errorf("after Invalidate: %d entries, want %d", len(l3.Files), len(l1.Files)+1)
	}
}

// decodeEntries reads back an encoded list following the receiver's rules.
func decodeEntries(t *testing.T, r io.Reader, o EncodeOptions) []File {
	t.Helper()
	var out []File
	var last File
	lastName := ""
	for {
		var x int32
		var err error
		switch {
		case o.VarintFlags:
			x, err = wire.ReadVarint(r)
		default:
			var b byte
			b, err = wire.ReadByte(r)
			x = int32(b)
			if o.Protocol >= 28 && x&xmitExtended != 0 {
				var b2 byte
				b2, err = wire.ReadByte(r)
				x |= int32(b2) << 8
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		if x == 0 {
			break
		}
		l1 := 0
		if x&xmitSameName != 0 {
			b, _ := wire.ReadByte(r)
			l1 = int(b)
		}
		var l2 int
		if x&xmitLongName != 0 {
			if o.Protocol < 30 {
				v, _ := wire.ReadInt32(r)
				l2 = int(v)
			} else {
				v, _ := wire.ReadVarint(r)
				l2 = int(v)
			}
		} else {
			b, _ := wire.ReadByte(r)
			l2 = int(b)
		}
		buf := make([]byte, l2)
		io.ReadFull(r, buf)
		f := last
		f.Name = lastName[:l1] + string(buf)
		f.Size, _ = wire.ReadInt64(r, o.Protocol)
		if x&xmitSameTime == 0 {
			if o.Protocol >= 30 {
				f.ModTime, _ = wire.ReadVarlong(r, 4)
			} else {
				v, _ := wire.ReadInt32(r)
				f.ModTime = int64(v)
			}
		}
		f.ModNsec = 0
		if x&xmitModNsec != 0 {
			f.ModNsec, _ = wire.ReadVarint(r)
		}
		if x&xmitSameMode == 0 {
			v, _ := wire.ReadInt32(r)
			f.Mode = uint32(v)
		}
		f.LinkTarget = ""
		if f.Mode&ModeTypeMask == ModeLink && o.Links {
			n, _ := wire.ReadInt32(r)
			if o.Protocol >= 30 {
				t.Fatal("test decoder handles links below 30 only")
			}
			b := make([]byte, n)
			io.ReadFull(r, b)
			f.LinkTarget = string(b)
		}
		out = append(out, f)
		last, lastName = f, f.Name
	}
	if o.VarintFlags {
		wire.ReadVarint(r)
	} else if o.Protocol < 30 {
		wire.ReadInt32(r)
	}
	return out
}

func TestEncodeRoundTrip(t *testing.T) {
	dir := makeTree(t)
	long := filepath.Join(dir, strings.Repeat("n", 200), strings.Repeat("m", 200))
	if err := os.MkdirAll(long, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(long, strings.Repeat("o", 200)), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := openCache(t, dir, nil)
	for _, o := range []EncodeOptions{
		{Protocol: 27, Links: true, Recursive: true},
		{Protocol: 29, Links: true, Recursive: true},
		{Protocol: 30, Recursive: true},
		{Protocol: 31, VarintFlags: true, Recursive: true},
	} {
		l, err := c.Select(context.Background(), Request{Recursive: true, Links: true, Protocol: o.Protocol})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := l.Encode(&buf, o); err != nil {
			t.Fatal(err)
		}
		got := decodeEntries(t, &buf, o)
		if buf.Len() != 0 {
			t.Errorf("proto %d: %d trailing bytes", o.Protocol, buf.Len())
		}
		// Symlinks are listed without -l too, without their target.
		var want []*File
		for _, f := range l.Files {
			if f.IsLink() && !o.Links {
				g := *f
				g.LinkTarget = ""
				f = &g
			}
			want = append(want, f)
		}
		if len(got) != len(want) {
			t.Fatalf("proto %d: decoded %d entries, want %d", o.Protocol, len(got), len(want))
		}
		for i, f := range want {
			g := got[i]
			nsec := f.ModNsec
			if o.Protocol < 31 {
				nsec = 0
			}
			if g.Name != f.Name || g.Size != f.Size || g.ModTime != f.ModTime || g.ModNsec != nsec || g.Mode != f.Mode || g.LinkTarget != f.LinkTarget {
				t.Errorf("proto %d entry %d: got %+v want %+v", o.Protocol, i, g, *f)
			}
		}
	}
}

func TestRescanOnChangeAndProbeWithoutWalk(t *testing.T) {
	dir := makeTree(t)
	c := openCache(t, dir, nil)
	ctx := context.Background()
	l, err := c.Select(ctx, Request{Paths: []string{"metadata/timestamp.chk"}, Recursive: true, Protocol: 31})
	if err != nil || len(l.Files) != 1 || l.Files[0].Name != "timestamp.chk" || !l.Files[0].IsRegular() {
		t.Fatalf("probe: %v %v", err, l)
	}
	if c.snap != nil {
		t.Error("single-file request walked the module")
	}
	c.Recheck = 0
	l1, _ := c.Select(ctx, Request{Recursive: true, Protocol: 31})
	if err := os.WriteFile(filepath.Join(dir, "b", "added"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// make sure the directory mtime differs even on coarse clocks
	if err := os.Chtimes(filepath.Join(dir, "b"), time.Unix(1, 0), time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	l2, _ := c.Select(ctx, Request{Recursive: true, Protocol: 31})
	if len(l2.Files) != len(l1.Files)+1 {
		t.Errorf("changed tree: %d entries, want %d", len(l2.Files), len(l1.Files)+1)
	}
}

func TestEncodeChecksums(t *testing.T) {
	dir := makeTree(t)
	c := openCache(t, dir, nil)
	for _, proto := range []int{27, 29} {
		l, err := c.Select(context.Background(), Request{Paths: []string{"b/"}, Recursive: true, Protocol: proto})
		if err != nil {
			t.Fatal(err)
		}
		var plain, summed bytes.Buffer
		o := EncodeOptions{Protocol: proto, Recursive: true}
		if err := l.Encode(&plain, o); err != nil {
			t.Fatal(err)
		}
		calls := 0
		o.ChecksumLen = 16
		o.Checksum = func(f *File) ([]byte, error) { calls++; return bytes.Repeat([]byte{0xAB}, 16), nil }
		if err := l.Encode(&summed, o); err != nil {
			t.Fatal(err)
		}
		regular, all := 0, len(l.Files)
		for _, f := range l.Files {
			if f.IsRegular() {
				regular++
			}
		}
		withSum := regular
		if proto < 28 {
			withSum = all // below 28 every entry carries a (zero) sum
		}
		if calls != regular || summed.Len()-plain.Len() != 16*withSum {
			t.Errorf("proto %d: %d checksum calls (want %d), %d extra bytes (want %d)", proto, calls, regular, summed.Len()-plain.Len(), 16*withSum)
		}
		if bytes.Count(summed.Bytes(), bytes.Repeat([]byte{0xAB}, 16)) != regular {
			t.Errorf("proto %d: checksums not found in the encoding", proto)
		}
	}
}
