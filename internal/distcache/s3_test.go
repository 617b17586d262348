package distcache

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/objstore"
	"github.com/lanmirror/lanmirror/internal/testutil"
)

// s3Backend starts versitygw (once per test) and returns a backend on a
// fresh bucket and prefix of it.
func s3Backend(t *testing.T, srv *testutil.S3Server) *objstore.S3 {
	t.Helper()
	bucket := srv.Bucket(t)
	be, err := objstore.NewS3(objstore.S3Config{
		URL: "s3://" + bucket + "/cache", Endpoint: srv.Endpoint, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := be.Check(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	return be
}

// TestBackendContract runs the same checks on the local-disk Store and on
// S3 (versitygw): Stat of a missing object, Commit, ranged Open, List,
// Delete.
func TestBackendContract(t *testing.T) {
	srv := testutil.StartS3(t)
	backends := []struct {
		name string
		open func(t *testing.T) objstore.Backend
	}{
		{"disk", func(t *testing.T) objstore.Backend {
			st, err := OpenStore(t.TempDir(), testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st.Backend()
		}},
		{"s3", func(t *testing.T) objstore.Backend { return s3Backend(t, srv) }},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			be := b.open(t)
			ctx := testCtx(t)
			if _, err := be.Stat(ctx, "distfiles/a.tar"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Stat of a missing object: %v, want fs.ErrNotExist", err)
			}
			if _, err := be.Open(ctx, "distfiles/a.tar", 0); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Open of a missing object: %v, want fs.ErrNotExist", err)
			}
			// Bigger than objstore.PartSize: a multipart upload on S3.
			data := testData(objstore.PartSize+300<<10, 3)
			src := filepath.Join(t.TempDir(), "src")
			if err := os.WriteFile(src, append(append([]byte(nil), data...), "trailing bytes not part of the object"...), 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(src)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			mod := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
			in := objstore.Info{Size: int64(len(data)), ModTime: mod, ContentType: "application/x-tar", ETag: `"abc"`, LastModified: mod.Format(time.RFC1123)}
			if err := be.Commit(ctx, "distfiles/a.tar", f, in); err != nil {
				t.Fatal(err)
			}
			small := []byte("small object")
			os.WriteFile(src, small, 0o644)
			f2, _ := os.Open(src)
			defer f2.Close()
			if err := be.Commit(ctx, "urls/example.org/x/y", f2, objstore.Info{Size: int64(len(small))}); err != nil {
				t.Fatal(err)
			}
			st, err := be.Stat(ctx, "distfiles/a.tar")
			if err != nil {
				t.Fatal(err)
			}
			if st.Size != int64(len(data)) || !st.ModTime.Equal(mod) || st.ContentType != in.ContentType || st.ETag != in.ETag || st.LastModified != in.LastModified {
				t.Fatalf("Stat = %+v, want size %d, mtime %v and the upstream headers", st, len(data), mod)
			}
			for _, off := range []int64{0, 1, objstore.PartSize - 1, int64(len(data)) - 1, int64(len(data))} {
				rc, err := be.Open(ctx, "distfiles/a.tar", off)
				if err != nil {
					t.Fatalf("Open at %d: %v", off, err)
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || !bytes.Equal(got, data[off:]) {
					t.Fatalf("Open at %d: %d bytes, %v; want the object's last %d", off, len(got), err, int64(len(data))-off)
				}
			}
			list, err := be.List(ctx, DistfilesPrefix)
			if err != nil || len(list) != 1 || list[0].Key != "distfiles/a.tar" || list[0].Size != int64(len(data)) {
				t.Fatalf("List(distfiles/) = %+v, %v", list, err)
			}
			all, err := be.List(ctx, "")
			if err != nil || len(all) != 2 || all[1].Key != "urls/example.org/x/y" {
				t.Fatalf("List() = %+v, %v", all, err)
			}
			if err := be.Delete(ctx, "distfiles/a.tar"); err != nil {
				t.Fatal(err)
			}
			if err := be.Delete(ctx, "distfiles/a.tar"); err != nil {
				t.Fatalf("Delete of a missing object: %v", err)
			}
			if _, err := be.Stat(ctx, "distfiles/a.tar"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Stat after Delete: %v", err)
			}
		})
	}
}

// TestCacheSuiteOnS3 runs this package's cache tests (coalescing, Range,
// resume, verification, revalidation) with the objects on S3
// (versitygw) instead of the local disk; the tests themselves run on the
// disk as the plain Test functions. The ones left out test the local
// disk's own machinery (kill -9 leftovers, a failing local disk).
func TestCacheSuiteOnS3(t *testing.T) {
	srv := testutil.StartS3(t)
	testRemote = func(t *testing.T) objstore.Backend { return s3Backend(t, srv) }
	defer func() { testRemote = nil }()
	for _, tc := range []struct {
		name string
		f    func(*testing.T)
	}{
		{"OneDownloadManyClients", TestOneDownloadManyClients},
		{"StreamsBeforeEnd", TestStreamsBeforeEnd},
		{"HoldsBackLastByte", TestHoldsBackLastByte},
		{"DownloadOutlivesClient", TestDownloadOutlivesClient},
		{"CloseAbortsWaitingRead", TestCloseAbortsWaitingRead},
		{"ResumeSameSource", TestResumeSameSource},
		{"ResumeNextSource", TestResumeNextSource},
		{"ResumeRangeIgnored", TestResumeRangeIgnored},
		{"ResumeBadContentRange", TestResumeBadContentRange},
		{"UpstreamLiesAboutLength", TestUpstreamLiesAboutLength},
		{"UpstreamSendsTooMuch", TestUpstreamSendsTooMuch},
		{"UnknownLength", TestUnknownLength},
		{"CorruptMirrorThenGood", TestCorruptMirrorThenGood},
		{"CorruptEverywhere", TestCorruptEverywhere},
		{"SizeAgainstManifest", TestSizeAgainstManifest},
		{"VolatileRevalidation", TestVolatileRevalidation},
		{"MirrorLayouts", TestMirrorLayouts},
		{"DeadMirror", TestDeadMirror},
	} {
		t.Run(tc.name, tc.f)
	}
}

// keysOf lists the bucket below the backend's prefix, for checks that no
// partial object is visible.
func keysWith(t *testing.T, srv *testutil.S3Server, bucket, sub string) []string {
	var out []string
	for _, k := range srv.Keys(t, bucket) {
		if strings.Contains(k, sub) {
			out = append(out, k)
		}
	}
	return out
}

// TestHotCacheOnS3: with Options.HotCache, a node keeps local copies of
// distfiles it served: its own download's file at once, another node's
// object after the first hit from the bucket; later hits are local
// (no object-storage read); the copies stay within the cap, least
// recently served removed first.
func TestHotCacheOnS3(t *testing.T) {
	srv := testutil.StartS3(t)
	be := s3Backend(t, srv)
	up := newUpstream(t)
	files := map[string][]byte{}
	ver := mapVerifier{}
	for i := range 4 {
		name := fmt.Sprintf("h%d.tar", i)
		files[name] = testData(300<<10, byte(60+i))
		ver[name] = distOf(name, files[name])
		up.handle("/distfiles/"+name, serveBytes(files[name], time.Unix(1700000000, 0)))
	}
	a := newTestCache(t, "", Options{Mirrors: []string{up.url("")}, Remote: be, HotCache: 1 << 20, Verifier: ver})
	b := newTestCache(t, "", Options{Mirrors: []string{up.url("")}, Remote: be, HotCache: 1 << 20, Verifier: ver})

	get := func(c *Cache, name string) *Body {
		t.Helper()
		body, _, err := c.Distfile(testCtx(t), name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := readAll(t, body, 0)
		if err != nil || !bytes.Equal(got, files[name]) {
			t.Fatalf("%s: %d bytes, %v", name, len(got), err)
		}
		if err := body.Wait(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		body.Close()
		return body
	}
	local := func(c *Cache, name string) bool {
		fi, err := c.store.Stat(DistfilesPrefix + name)
		return err == nil && fi.Size() == int64(len(files[name]))
	}

	get(a, "h0.tar") // a downloads it
	if !local(a, "h0.tar") {
		t.Fatal("the downloading node kept no local copy")
	}
	if local(b, "h0.tar") {
		t.Fatal("node b has a copy before serving the file")
	}
	if body := get(b, "h0.tar"); body.remote == nil {
		t.Fatal("node b's first hit is not from the bucket")
	}
	for deadline := time.Now().Add(20 * time.Second); !local(b, "h0.tar"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("node b made no local copy after a hit from the bucket")
		}
	}
	if body := get(b, "h0.tar"); body.remote != nil || body.file == nil {
		t.Fatal("node b's hit after the copy still reads the bucket")
	}
	if up.requests("/distfiles/h0.tar") != 1 {
		t.Fatalf("%d upstream requests", up.requests("/distfiles/h0.tar"))
	}
	// The cap: 4 x 300 KiB > 1 MiB on node a.
	for _, n := range []string{"h1.tar", "h2.tar", "h3.tar"} {
		get(a, n)
		time.Sleep(10 * time.Millisecond)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ents, err := a.store.Entries(DistfilesPrefix)
		if err != nil {
			t.Fatal(err)
		}
		var total int64
		for _, e := range ents {
			total += e.Size
		}
		if total <= 1<<20 && !local(a, "h0.tar") && local(a, "h3.tar") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("local copies %d bytes (cap 1 MiB), h0 (least recently served) kept: %v", total, local(a, "h0.tar"))
		}
	}
	// Removed locally, still served (from the bucket).
	if body := get(a, "h0.tar"); body.remote == nil {
		t.Fatal("h0 not served from the bucket after its local copy went")
	}
}
