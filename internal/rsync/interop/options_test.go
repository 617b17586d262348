package interop

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/testtree"
)

// archiveCmp is what -a preserves (no excludes, every symlink).
func archiveCmp(proto int) cmpOpts {
	return cmpOpts{perms: true, times: true, nanos: proto == 0 || proto >= 31, dirTimes: true, links: true}
}

// withProto prepends --protocol=N when proto > 0.
func withProto(proto int, args ...string) []string {
	if proto > 0 {
		return append([]string{fmt.Sprintf("--protocol=%d", proto)}, args...)
	}
	return args
}

// TestArchive is a plain mirror of a tree of thousands of files with -a
// and -avz (verbose listing of every file, compression), then a no-op
// re-sync.
func TestArchive(t *testing.T) {
	forEachServer(t, func(t *testing.T, kind serverKind) {
		src := newTree(t, 11, 3000)
		srv := startServer(t, kind, serverConf{modules: []module{{name: "tree", path: src}}})
		for _, flags := range []string{"-a", "-avz"} {
			t.Run(flags, func(t *testing.T) {
				t.Parallel()
				dst := filepath.Join(t.TempDir(), "dst")
				r := mustRsync(t, flags, "--stats", srv.url("tree/"), dst+"/")
				compareTrees(t, src, dst, archiveCmp(0))
				wantTransferred(t, r, regularFiles(t, src, archiveCmp(0)))
				if strings.Contains(flags, "v") && !strings.Contains(r.stdout, testtree.BigFile) {
					t.Errorf("-v output does not list %s:\n%s", testtree.BigFile, r)
				}
				r = mustRsync(t, flags, "--stats", srv.url("tree/"), dst+"/")
				wantTransferred(t, r, 0)
				if got := statValue(t, r, "Literal data"); got != 0 {
					t.Errorf("no-op sync sent %v bytes of literal data\n%s", got, r)
				}
			})
		}
	})
}

// TestChecksum is -c: a file changed without changing its size or mtime
// is missed by the quick check but found by the file-list checksums, at
// protocols using MD4 (27, 29) and the negotiated checksums (30+).
func TestChecksum(t *testing.T) {
	forEachServer(t, func(t *testing.T, kind serverKind) {
		cases := []struct {
			name  string
			proto int
			extra []string
		}{
			{"protocol=27", 27, nil},
			{"protocol=30", 30, nil},
			{"negotiated", 0, nil},
			{"choice=md5", 0, []string{"--checksum-choice=md5"}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				src := newTree(t, 21, 150)
				srv := startServer(t, kind, serverConf{modules: []module{{name: "tree", path: src}}})
				dst := filepath.Join(t.TempDir(), "dst")
				args := func(more ...string) []string {
					a := withProto(c.proto, append([]string{"-rlpt", "--stats"}, c.extra...)...)
					return append(a, append(more, srv.url("tree/"), dst+"/")...)
				}
				mustRsync(t, args("-c")...)
				compareTrees(t, src, dst, archiveCmp(c.proto))

				// Same size, same mtime, different bytes (replaced by
				// rename, as tree updates do).
				rel := "eclass/cmake.eclass"
				p := filepath.Join(src, rel)
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				data, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				data[len(data)/2] ^= 0x01
				tmp := filepath.Join(src, "eclass", ".tmp")
				if err := os.WriteFile(tmp, data, fi.Mode().Perm()); err != nil {
					t.Fatal(err)
				}
				if err := os.Chtimes(tmp, fi.ModTime(), fi.ModTime()); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(tmp, p); err != nil {
					t.Fatal(err)
				}
				settle(kind)

				// Control: without -c the change is invisible.
				r := mustRsync(t, args()...)
				wantTransferred(t, r, 0)
				if same, _ := sameContent(p, filepath.Join(dst, rel)); same {
					t.Fatalf("control failed: %s updated without -c", rel)
				}
				r = mustRsync(t, args("-c")...)
				wantTransferred(t, r, 1)
				compareTrees(t, src, dst, archiveCmp(c.proto))
			})
		}
	})
}

// TestDelta is --no-whole-file after the tree changed: the receiver sends
// block checksums of its old files and the server must answer with block
// matches (Matched data > 0), with and without compression, at protocols
// with MD4 (27) and MD5 (30, 31) block sums.
func TestDelta(t *testing.T) {
	forEachServer(t, func(t *testing.T, kind serverKind) {
		for _, proto := range []int{27, 30, 31} {
			for _, z := range []bool{false, true} {
				name := fmt.Sprintf("protocol=%d", proto)
				if z {
					name += "/compress"
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					testDelta(t, kind, proto, z, nil)
				})
			}
		}
		// --inplace: the receiver overwrites its basis file as it goes,
		// so the server must not refer to blocks it has passed.
		t.Run("protocol=31/inplace", func(t *testing.T) {
			t.Parallel()
			testDelta(t, kind, 31, false, []string{"--inplace"})
		})
		t.Run("protocol=29/compress/inplace", func(t *testing.T) {
			t.Parallel()
			testDelta(t, kind, 29, true, []string{"--inplace"})
		})
		// Blocks longer than 0xFFFF: below protocol 31 the compressed
		// history of a matched block is fed only its first 64 KiB.
		for _, proto := range []int{30, 31} {
			t.Run(fmt.Sprintf("protocol=%d/compress/block-size=70000", proto), func(t *testing.T) {
				t.Parallel()
				testDelta(t, kind, proto, true, []string{"--block-size=70000"})
			})
		}
	})
}

// testDelta syncs a tree, changes it, and re-syncs with --no-whole-file;
// it returns the re-sync.
func testDelta(t *testing.T, kind serverKind, proto int, z bool, extra []string) *rsyncResult {
	t.Helper()
	src := newTree(t, 31+uint64(proto), 300)
	srv := startServer(t, kind, serverConf{modules: []module{{name: "tree", path: src}}})
	dst := filepath.Join(t.TempDir(), "dst")
	args := withProto(proto, append([]string{"-a", "--delete", "--no-whole-file", "--stats"}, extra...)...)
	if z {
		args = append(args, "-z")
	}
	args = append(args, srv.url("tree/"), dst+"/")
	mustRsync(t, args...)
	compareTrees(t, src, dst, archiveCmp(proto))

	ch, err := testtree.Mutate(src, 77)
	if err != nil {
		t.Fatal(err)
	}
	settle(kind)
	r := mustRsync(t, args...)
	if compareTrees(t, src, dst, archiveCmp(proto)) > 0 {
		t.Fatalf("delta sync differs\n%s", r)
	}
	wantTransferred(t, r, ch.Transfers)
	if m := statValue(t, r, "Matched data"); m <= 0 {
		t.Errorf("Matched data = %v: no block of the changed files was matched\n%s", m, r)
	}
	// The large file changed a few bytes in the middle and grew at the end:
	// nearly all of it must come from the receiver's blocks.
	if lit := statValue(t, r, "Literal data"); lit > 500_000 {
		t.Errorf("Literal data = %v: the delta sent far more than the changes\n%s", lit, r)
	}
	return r
}

// TestCompressChoice forces each compressor the server may negotiate:
// initial sync and a delta re-sync, and checks the client's report of
// what it used.
func TestCompressChoice(t *testing.T) {
	forEachServer(t, func(t *testing.T, kind serverKind) {
		for _, choice := range []string{"zlib", "zlibx", "zstd", "lz4", "zlib/level=1", "zstd/level=19"} {
			t.Run(choice, func(t *testing.T) {
				t.Parallel()
				extra := []string{"--debug=nstr"}
				choice, level, ok := strings.Cut(choice, "/level=")
				if ok {
					extra = append(extra, "--compress-level="+level)
				}
				r := testDelta(t, kind, 0, true, append(extra, "--compress-choice="+choice))
				// The client reports the compressor it used.
				if !strings.Contains(r.stdout+r.stderr, "compress: "+choice+" ") {
					t.Errorf("client did not use %s:\n%s", choice, r)
				}
			})
		}
		// Negotiated (plain -z, as Portage asks): stock rsyncd ends up at
		// the client's favourite, zstd; lanmirror offers lz4, which costs
		// it the least CPU, and the stock client takes it.
		t.Run("negotiated", func(t *testing.T) {
			t.Parallel()
			r := testDelta(t, kind, 0, true, []string{"--debug=nstr"})
			want := "lz4"
			if kind == kindStock {
				want = "zstd"
			}
			if !strings.Contains(r.stdout+r.stderr, "compress: "+want+" ") {
				t.Errorf("client did not negotiate %s:\n%s", want, r)
			}
		})
	})
}

// TestBwlimit: --bwlimit reaches the server (the sender writes the data,
// so stock rsync throttles there) and the transfer takes at least about
// as long as the limit implies.
func TestBwlimit(t *testing.T) {
	forEachServer(t, func(t *testing.T, kind serverKind) {
		src := t.TempDir()
		data := make([]byte, 2<<20)
		for i := range data {
			data[i] = byte(i*7919 ^ i>>9)
		}
		if err := os.WriteFile(filepath.Join(src, "two-mib"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		srv := startServer(t, kind, serverConf{modules: []module{{name: "tree", path: src}}})
		dst := filepath.Join(t.TempDir(), "dst")
		start := time.Now()
		// 1024 KiB/s for 2 MiB: about 2 s; anything under 1 s is unthrottled.
		mustRsync(t, "-a", "--bwlimit=1024", srv.url("tree/"), dst+"/")
		if d := time.Since(start); d < time.Second {
			t.Errorf("2 MiB with --bwlimit=1024 took %v: the limit was not applied", d)
		}
		compareTrees(t, src, dst, archiveCmp(0))
	})
}

// TestOddNames: names a tree server must pass through byte for byte:
// newline, invalid UTF-8, glob and escape characters, a leading dash, a
// 255-byte name, and a path over 1,000 bytes deep.
func TestOddNames(t *testing.T) {
	forEachServer(t, func(t *testing.T, kind serverKind) {
		src := t.TempDir()
		deep := src
		for i := 0; i < 40; i++ {
			deep = filepath.Join(deep, fmt.Sprintf("level-%02d-%s", i, strings.Repeat("d", 20)))
		}
		names := []string{
			"new\nline", "bad\xffbyte\xfe", "glob*?[x]{a,b}", "back\\slash", "-leading-dash", "  spaces  ",
			"tab\there", strings.Repeat("n", 255), "percent%2Fslash", ".hidden",
		}
		for i, n := range names {
			if err := os.WriteFile(filepath.Join(src, n), []byte(fmt.Sprintf("file %d\n", i)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.MkdirAll(deep, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(deep, "deep-file"), []byte("deep\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("new\nline", filepath.Join(src, "link to\nodd")); err != nil {
			t.Fatal(err)
		}
		srv := startServer(t, kind, serverConf{modules: []module{{name: "tree", path: src}}})
		for _, proto := range []int{27, 0} {
			dst := filepath.Join(t.TempDir(), "dst")
			mustRsync(t, withProto(proto, "-a", srv.url("tree/"), dst+"/")...)
			compareTrees(t, src, dst, archiveCmp(proto))
		}
	})
}

// lanmirrorRefuses maps the options of TestOtherClientOptions lanmirror
// refuses to the part of its error message that names the option.
var lanmirrorRefuses = map[string]string{
	"-aH":         "option -H is not supported",
	"-aHAX":       "option -H is not supported",
	"-aA":         "option -A is not supported",
	"-aX":         "option -X is not supported",
	"-aU":         "option -U (--atimes) is not supported",
	"-a --atimes": "option -U (--atimes) is not supported",
	"-a -s":       "option -s (protect-args) is not supported",
	"-a -F":       "merge rules are not supported",
}

// TestOtherClientOptions: options people add out of habit (-aH, -aHAX,
// -U, -F, -s, ...). Stock rsyncd serves all of them; lanmirror serves all
// but those in lanmirrorRefuses, which it refuses with a message naming
// what is not supported (never a broken protocol stream). The outcome of
// each option is pinned: a change either way fails here.
func TestOtherClientOptions(t *testing.T) {
	forEachServer(t, func(t *testing.T, kind serverKind) {
		src := newTree(t, 90, 60)
		// A hard link, for -H.
		if err := os.Link(filepath.Join(src, "eclass", "cmake.eclass"), filepath.Join(src, "eclass", "hardlink.eclass")); err != nil {
			t.Fatal(err)
		}
		srv := startServer(t, kind, serverConf{modules: []module{{name: "tree", path: src}}})
		for _, opts := range []string{"-aH", "-aA", "-aX", "-aHAX", "-aU", "-a --atimes", "-a -F", "-a -s",
			"-aS", "-ax", "-aE", "-a --numeric-ids", "-a -y", "-a --size-only", "-a -I", "-a --append-verify",
			"-a --partial", "-a --delay-updates", "-a --prune-empty-dirs", "-a --checksum-seed=5 -c"} {
			t.Run(opts, func(t *testing.T) {
				t.Parallel()
				dst := filepath.Join(t.TempDir(), "dst")
				r := rsyncCmd(t, append(strings.Fields(opts), srv.url("tree/"), dst+"/")...)
				if want, refused := lanmirrorRefuses[opts]; refused && kind == kindLanmirror {
					if r.code == 0 {
						t.Fatalf("lanmirror accepted %s, refused until now: update lanmirrorRefuses\n%s", opts, r)
					}
					if !strings.Contains(r.stderr, want) {
						t.Errorf("refused without saying %q:\n%s", want, r)
					}
					return
				}
				if r.code != 0 {
					t.Fatalf("%s failed:\n%s", opts, r)
				}
				compareTrees(t, src, dst, archiveCmp(0))
				if strings.Contains(opts, "H") {
					a, err1 := os.Stat(filepath.Join(dst, "eclass", "cmake.eclass"))
					b, err2 := os.Stat(filepath.Join(dst, "eclass", "hardlink.eclass"))
					if err1 != nil || err2 != nil || !os.SameFile(a, b) {
						t.Errorf("-H: hard link not kept (%v %v)", err1, err2)
					}
				}
			})
		}
	})
}
