package sender

import (
	"bytes"
	"crypto/md5"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/rsync/checksum"
	"github.com/lanmirror/lanmirror/internal/rsync/token"
)

// compressFiles writes, under old and new, versions of a few files that
// a delta transfer turns into a mix of matched blocks and literals:
// ebuild-like text and random data over 1 MiB with changes, insertions
// and deletions here and there, and small files.
func compressFiles(t *testing.T, oldDir, newDir string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 31))
	words := strings.Fields("inherit cmake flag-o-matic SRC_URI KEYWORDS amd64 ~arm64 DEPEND RDEPEND dev-libs/openssl src_configure econf emake DESCRIPTION HOMEPAGE LICENSE GPL-2 SLOT IUSE")
	text := func(n int) []byte {
		var b []byte
		for len(b) < n {
			b = append(b, words[rng.IntN(len(words))]...)
			if rng.IntN(8) == 0 {
				b = append(b, '\n')
			} else {
				b = append(b, ' ')
			}
		}
		return b[:n]
	}
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	// edit changes, inserts and deletes runs of bytes at a few places.
	edit := func(b []byte, gen func(int) []byte) []byte {
		out := append([]byte{}, b...)
		for k := 0; k < 12; k++ {
			at := rng.IntN(len(out))
			n := 1 + rng.IntN(3000)
			switch k % 3 {
			case 0:
				copy(out[at:], gen(n))
			case 1:
				out = append(out[:at], append(gen(n), out[at:]...)...)
			default:
				out = append(out[:at], out[min(at+n, len(out)):]...)
			}
		}
		return out
	}
	write := func(dir, name string, data []byte, mt time.Time) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	then, now := time.Unix(1700000000, 0), time.Unix(1700100000, 0)
	files := map[string][2][]byte{}
	t1 := text(1<<20 + 4321)
	files["metadata/md5-cache.txt"] = [2][]byte{t1, edit(t1, text)}
	r1 := random(1<<20 + 777)
	files["distfiles-like/blob.bin"] = [2][]byte{r1, edit(r1, random)}
	t2 := text(300000)
	// Literal data repeating blocks the receiver already has.
	files["app-misc/foo/foo-1.ebuild"] = [2][]byte{t2, append(append(append([]byte{}, t2[:100000]...), t2[50000:150000]...), t2[100000:]...)}
	for i := 0; i < 20; i++ {
		s := text(rng.IntN(5000))
		files[fmt.Sprintf("cat%d/p/p-%d.ebuild", i%3, i)] = [2][]byte{s, edit(append(s, 'x'), text)}
	}
	files["new/only-new.txt"] = [2][]byte{nil, text(70000)}
	files["empty"] = [2][]byte{nil, {}}
	for name, v := range files {
		if v[0] != nil {
			write(oldDir, name, v[0], then)
		}
		write(newDir, name, v[1], now)
	}
}

var statRe = regexp.MustCompile(`(Literal data|Matched data|Total bytes received): ([0-9,]+)`)

// transferStats reads the client's --stats numbers (without
// --human-readable).
func transferStats(t *testing.T, out string) map[string]int64 {
	t.Helper()
	st := map[string]int64{}
	for _, m := range statRe.FindAllStringSubmatch(out, -1) {
		v, err := strconv.ParseInt(strings.ReplaceAll(m[2], ",", ""), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		st[m[1]] = v
	}
	if len(st) != 3 {
		t.Fatalf("no transfer stats in client output:\n%s", out)
	}
	return st
}

// TestCompressedTransfers: the stock rsync client mirrors files through
// every compressed token stream, whole-file and as deltas against older
// versions, at protocols 27, 29, 30 and 31, and the result is identical
// byte for byte.
func TestCompressedTransfers(t *testing.T) {
	type tc struct {
		proto  int
		choice string // "" : plain -z
	}
	var cases []tc
	for _, p := range []int{27, 29} {
		cases = append(cases, tc{p, ""})
	}
	for _, p := range []int{30, 31} {
		for _, c := range []string{"zlib", "zlibx", "zstd", "lz4"} {
			cases = append(cases, tc{p, c})
		}
	}
	cases = append(cases, tc{31, ""}) // negotiated
	src, old := t.TempDir(), t.TempDir()
	compressFiles(t, old, src)
	srv := startServer(t, src, true)
	for _, c := range cases {
		name := fmt.Sprintf("protocol%d-%s", c.proto, c.choice)
		if c.choice == "" {
			name += "negotiated"
		}
		t.Run(name, func(t *testing.T) {
			for _, whole := range []bool{true, false} {
				dst := t.TempDir()
				if !whole {
					if err := os.CopyFS(dst, os.DirFS(old)); err != nil {
						t.Fatal(err)
					}
				}
				args := []string{"-rtz", "--stats", fmt.Sprintf("--protocol=%d", c.proto)}
				if c.choice != "" {
					args = append(args, "--compress-choice="+c.choice)
				}
				if whole {
					args = append(args, "--whole-file")
				} else {
					args = append(args, "--no-whole-file")
				}
				out, err := rsyncCmd(t, append(args, srv.url(), dst+"/")...)
				if err != nil {
					t.Fatalf("rsync %v: %v\n%s\nserver log:\n%s", args, err, out, srv.logs)
				}
				if serr := srv.sessionErr(); serr != nil {
					t.Fatalf("session: %v\n%s", serr, out)
				}
				// A corrupt stream may still end in an identical tree
				// after the client's redo pass: it must not need one.
				if strings.Contains(out, "failed verification") {
					t.Errorf("client had to retry files:\n%s", out)
				}
				compareTrees(t, src, dst, c.proto >= 31)
				st := transferStats(t, out)
				if !whole && (st["Matched data"] < 1<<20 || st["Literal data"] == 0) {
					t.Errorf("delta transfer: %d bytes matched, %d literal: not a mix", st["Matched data"], st["Literal data"])
				}
				// Text dominates the literal data: compressed, it must
				// take clearly fewer bytes on the wire.
				if lit := st["Literal data"]; st["Total bytes received"] > lit*9/10 {
					t.Errorf("%d bytes received for %d literal bytes: not compressed", st["Total bytes received"], lit)
				}
			}
			want := c.choice
			if want == "" {
				// Negotiated: our favourite among the client's (the stock
				// client here lists lz4, as Debian's and Gentoo's
				// default builds do).
				want = "zlib"
				if c.proto >= 30 {
					want = "lz4"
				}
			}
			if !strings.Contains(srv.logs.String(), "compress="+want) {
				t.Errorf("server log does not show compress=%s:\n%s", want, srv.logs)
			}
		})
	}
}

// TestCompressedLongBlocks: blocks longer than 64 KiB enter the zlib
// history in pieces, before protocol 31 each piece from the block's
// start again (stock rsync's compatibility rule); a stock client must
// rebuild the files at 30 and 31.
func TestCompressedLongBlocks(t *testing.T) {
	src, old := t.TempDir(), t.TempDir()
	compressFiles(t, old, src)
	srv := startServer(t, src, true)
	for _, proto := range []int{30, 31} {
		t.Run(fmt.Sprintf("protocol%d", proto), func(t *testing.T) {
			dst := t.TempDir()
			if err := os.CopyFS(dst, os.DirFS(old)); err != nil {
				t.Fatal(err)
			}
			args := []string{"-rtz", "--stats", "--no-whole-file", "--block-size=100000",
				"--compress-choice=zlib", fmt.Sprintf("--protocol=%d", proto), srv.url(), dst + "/"}
			out, err := rsyncCmd(t, args...)
			if err != nil {
				t.Fatalf("rsync %v: %v\n%s\nserver log:\n%s", args, err, out, srv.logs)
			}
			if serr := srv.sessionErr(); serr != nil {
				t.Fatalf("session: %v\n%s", serr, out)
			}
			if strings.Contains(out, "failed verification") {
				t.Errorf("client had to retry files:\n%s", out)
			}
			compareTrees(t, src, dst, proto >= 31)
			if st := transferStats(t, out); st["Matched data"] < 200000 {
				t.Errorf("only %d bytes matched with 100000-byte blocks", st["Matched data"])
			}
		})
	}
}

// TestMatchAcrossBufferEnd: a window that does not match and ends exactly
// at the end of the matcher's buffer must keep rolling after the refill
// (it used to shrink as at the end of the file, and nothing after it
// matched again: with 32 KiB blocks and a change in block 15, the rest
// of a 1 MiB file went as literal data).
func TestMatchAcrossBufferEnd(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	old := make([]byte, 1<<20)
	for i := range old {
		old[i] = byte(rng.IntN(256))
	}
	nw := append([]byte{}, old...)
	copy(nw[500000:], "XYZ")
	for _, blen := range []int{1024, 16384, 32768, 65536, 70000} {
		strong := checksum.ForProtocol(31, 1, true)
		h, sums := makeSums(old, blen, 16, strong)
		var stream bytes.Buffer
		st, err := matchFile(bytes.NewReader(nw), h, sums, strong, token.Plain{W: &stream}, md5.New(), false)
		if err != nil {
			t.Fatal(err)
		}
		if st.Literal > int64(blen) {
			t.Errorf("block length %d: %d literal bytes for a 3-byte change", blen, st.Literal)
		}
		if got := applyTokens(t, old, stream.Bytes(), blen); !bytes.Equal(got, nw) {
			t.Errorf("block length %d: rebuilt file differs", blen)
		}
	}
}

// TestPreferred: the server's favourite among the client's names, and an
// advertised list from which the client's rule (its first name that the
// server lists) arrives at the same name.
func TestPreferred(t *testing.T) {
	ours := []string{"lz4", "zstd", "zlibx", "zlib"}
	for _, c := range []struct {
		theirs string
		want   string
	}{
		{"zstd lz4 zlibx zlib", "lz4"},
		{"zstd zlibx zlib", "zstd"},
		{"zlib zlibx", "zlibx"},
		{"zlib", "zlib"},
		{"lz4", "lz4"},
		{"none", ""},
		{"", ""},
	} {
		theirs := strings.Fields(c.theirs)
		pick, adv := preferred(theirs, ours)
		if pick != c.want {
			t.Errorf("%q: picked %q, want %q", c.theirs, pick, c.want)
			continue
		}
		if pick == "" {
			if !slices.Equal(adv, ours) {
				t.Errorf("%q: advertised %q, want our whole list", c.theirs, adv)
			}
			continue
		}
		// The client's rule on what we advertise.
		client := ""
		for _, n := range theirs {
			if slices.Contains(adv, n) {
				client = n
				break
			}
		}
		if client != pick {
			t.Errorf("%q: we advertise %q, the client would pick %q, we %q", c.theirs, adv, client, pick)
		}
	}
}
