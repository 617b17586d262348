package flist

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/rsync/wire"
	"github.com/lanmirror/lanmirror/internal/testutil"
)

// stockFlist runs the stock rsync as a server sender over dir at a
// pre-30 protocol and returns the raw file list bytes it sends.
func stockFlist(t *testing.T, dir string, proto int) []byte {
	t.Helper()
	flags := "-lr"
	if proto >= 30 {
		flags = "-lre.LsfxCvu" // varint flist flags, no incremental recursion
	}
	return stockFlistFlags(t, dir, proto, flags)
}

// stockFlistFlags is stockFlist with the server's short option group.
func stockFlistFlags(t *testing.T, dir string, proto int, flags string) []byte {
	t.Helper()
	return stockFlistPath(t, dir+"/", proto, flags)
}

// stockFlistPath is stockFlistFlags for any source path argument.
func stockFlistPath(t *testing.T, src string, proto int, flags string) []byte {
	t.Helper()
	testutil.RequireTool(t, "rsync")
	cmd := exec.Command("rsync", "--server", "--sender", flags, ".", src)
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	wire.WriteInt32(in, int32(proto))
	if proto >= 30 {
		wire.WriteVstring(in, "md5")
	}
	if _, err := wire.ReadInt32(out); err != nil { // remote version
		t.Fatal(err)
	}
	if proto >= 30 {
		if _, err := wire.ReadVarint(out); err != nil { // compat flags
			t.Fatal(err)
		}
		if _, err := wire.ReadVstring(out, 0); err != nil { // checksum list
			t.Fatal(err)
		}
	}
	if _, err := wire.ReadInt32(out); err != nil { // checksum seed
		t.Fatal(err)
	}
	if proto >= 30 { // the client's side is multiplexed too
		wire.WriteInt32(in, 7<<24|4)
	}
	wire.WriteInt32(in, 0) // empty filter list
	var data []byte
	for i := 0; i < 20; i++ {
		var h [4]byte
		if _, err := io.ReadFull(out, h[:]); err != nil {
			t.Fatal(err)
		}
		v := binary.LittleEndian.Uint32(h[:])
		pl := make([]byte, v&0xFFFFFF)
		if _, err := io.ReadFull(out, pl); err != nil {
			t.Fatal(err)
		}
		if v>>24 == 7 {
			data = append(data, pl...)
			break
		}
	}
	return data
}

// TestEncodeMatchesStockBytes builds chains with one entry per directory
// (so the stock sender's readdir order equals the sorted order) and
// compares our encoding byte for byte with stock rsync's.
func TestEncodeMatchesStockBytes(t *testing.T) {
	for _, leaf := range []string{"file", "link"} {
		dir := t.TempDir()
		q := filepath.Join(dir, "p", "q q")
		if err := os.MkdirAll(q, 0o750); err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(q, "ü-leaf")
		if leaf == "file" {
			if err := os.WriteFile(f, []byte("some data"), 0o640); err != nil {
				t.Fatal(err)
			}
			os.Chtimes(f, time.Unix(1500000000, 0), time.Unix(1500000000, 0))
		} else if err := os.Symlink("../../outside", f); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(q, time.Unix(1600000000, 0), time.Unix(1600000000, 0))
		for _, proto := range []int{27, 28, 29, 30, 31} {
			want := stockFlist(t, dir, proto)
			c := openCache(t, dir, nil)
			l, err := c.Select(context.Background(), Request{Recursive: true, Links: true, Protocol: proto})
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if err := l.Encode(&got, EncodeOptions{Protocol: proto, VarintFlags: proto >= 30, Links: true, Recursive: true}); err != nil {
				t.Fatal(err)
			}
			if len(want) < got.Len() || !bytes.Equal(got.Bytes(), want[:got.Len()]) {
				t.Errorf("%s proto %d:\n got %x\nwant %x", leaf, proto, got.Bytes(), want)
			}
		}
	}
}

// TestEncodeOwnersMatchStock compares -o -g lists (ids and the id name
// lists, with ID0_NAMES from 30) with stock rsync's, for a file owned by
// nobody:nogroup (needs root to chown).
func TestEncodeOwnersMatchStock(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file another owner")
	}
	if UserName(65534) == "" || GroupName(65534) == "" {
		t.Skip("no user/group 65534")
	}
	dir := t.TempDir()
	q := filepath.Join(dir, "p")
	if err := os.MkdirAll(q, 0o755); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(q, "owned")
	if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(f, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	for _, proto := range []int{29, 31} {
		flags := "-lrog"
		if proto >= 30 {
			flags = "-lroge.LsfxCvu"
		}
		want := stockFlistFlags(t, dir, proto, flags)
		c := openCache(t, dir, nil)
		l, err := c.Select(context.Background(), Request{Recursive: true, Links: true, Protocol: proto})
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		eo := EncodeOptions{Protocol: proto, VarintFlags: proto >= 30, Links: true, Recursive: true,
			UIDs: true, GIDs: true, ID0Names: proto >= 30, UserName: UserName, GroupName: GroupName}
		if err := l.Encode(&got, eo); err != nil {
			t.Fatal(err)
		}
		if len(want) < got.Len() || !bytes.Equal(got.Bytes(), want[:got.Len()]) {
			t.Errorf("proto %d:\n got %x\nwant %x", proto, got.Bytes(), want)
		}
		if !bytes.Contains(got.Bytes(), []byte("nobody")) || !bytes.Contains(got.Bytes(), []byte("nogroup")) {
			t.Errorf("proto %d: id names missing: %x", proto, got.Bytes())
		}
	}
}

// TestEncodeDirsOnlyMatchesStock compares -d lists (no recursion) with
// stock rsync's: the "." of "dir/" is a top directory with contents, its
// subdirectories and a directory named without a slash have none.
func TestEncodeDirsOnlyMatchesStock(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sub", "deeper"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, proto := range []int{29, 31} {
		flags := "-ld"
		if proto >= 30 {
			flags = "-lde.LsfxCvu"
		}
		for _, arg := range []string{"", "sub"} {
			want := stockFlistPath(t, filepath.Join(dir, arg)+map[string]string{"": "/", "sub": ""}[arg], proto, flags)
			c := openCache(t, dir, nil)
			l, err := c.Select(context.Background(), Request{Paths: []string{arg}, Links: true, Protocol: proto})
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if err := l.Encode(&got, EncodeOptions{Protocol: proto, VarintFlags: proto >= 30, Links: true}); err != nil {
				t.Fatal(err)
			}
			if len(want) < got.Len() || !bytes.Equal(got.Bytes(), want[:got.Len()]) {
				t.Errorf("proto %d arg %q:\n got %x\nwant %x", proto, arg, got.Bytes(), want)
			}
		}
	}
}
