package httpd

import (
	"bytes"
	"crypto/sha512"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/blake2b"

	"github.com/lanmirror/lanmirror/internal/distcache"
	"github.com/lanmirror/lanmirror/internal/gentoo"
	"github.com/lanmirror/lanmirror/internal/testutil"
)

// digestVerifier is a Verifier with full Manifest entries.
type digestVerifier map[string]gentoo.Dist

func (v digestVerifier) Lookup(name string) (gentoo.Dist, bool) { d, ok := v[name]; return d, ok }

func distEntry(name string, data []byte) gentoo.Dist {
	b := blake2b.Sum512(data)
	s := sha512.Sum512(data)
	return gentoo.Dist{Name: name, Size: int64(len(data)), BLAKE2B: b[:], SHA512: s[:]}
}

// slowMirror serves data (whatever the path ends with name) in pieces,
// honouring Range, and counts requests.
func slowMirror(t *testing.T, name string, data []byte) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/"+name) {
			http.NotFound(w, r)
			return
		}
		n.Add(1)
		start := 0
		if rg := r.Header.Get("Range"); rg != "" {
			v, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-"))
			start = v
			w.Header().Set("Content-Range", "bytes "+strconv.Itoa(start)+"-"+strconv.Itoa(len(data)-1)+"/"+strconv.Itoa(len(data)))
			w.Header().Set("Content-Length", strconv.Itoa(len(data)-start))
			w.WriteHeader(http.StatusPartialContent)
		} else {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		}
		rc := http.NewResponseController(w)
		for off := start; off < len(data); off += 32 << 10 {
			if _, err := w.Write(data[off:min(off+32<<10, len(data))]); err != nil {
				return
			}
			rc.Flush()
			time.Sleep(10 * time.Millisecond)
		}
	}))
	t.Cleanup(ts.Close)
	return ts, &n
}

// TestNoSpliceWithStockClients: the first mirror sends a corrupt copy of
// the right size, the second a good one. lanmirror streams the corrupt
// copy, cuts it when its digest fails, and the stock clients retry (wget
// -t by itself, Portage's RESUMECOMMAND with -c, curl -C -) through the
// mirror mode, the forward proxy and fetch-through: each must either
// fail or end with exactly the good bytes, never exit 0 with anything
// else (the corrupt head spliced onto the good tail).
func TestNoSpliceWithStockClients(t *testing.T) {
	wget := testutil.RequireTool(t, "wget")
	curl := testutil.RequireTool(t, "curl")
	const name = "splice-1.tar.xz"
	good := testData(768<<10, 41)
	bad := append([]byte(nil), good...)
	for i := 0; i < 4096; i++ {
		bad[i] ^= 0xa5 // the head differs: a splice is visible
	}
	ver := digestVerifier{name: distEntry(name, good)}

	type step struct{ args []string }
	fetch := func(u string) []string {
		return []string{wget, "--no-config", "-t", "3", "-T", "60", "--passive-ftp", "-O", "out", u}
	}
	resume := func(u string) []string {
		return []string{wget, "--no-config", "-c", "-t", "3", "-T", "60", "--passive-ftp", "-O", "out", u}
	}
	classic := func(u string) []string {
		return []string{wget, "--no-config", "-t", "5", "--passive-ftp", u, "-O", "out"}
	}
	curlResume := func(u string) []string { return []string{curl, "-sS", "-C", "-", "-o", "out", u} }
	curlRetry := func(u string) []string {
		return []string{curl, "-fsS", "--retry", "3", "--retry-delay", "1", "--retry-all-errors", "-C", "-", "-o", "out", u}
	}

	for _, mode := range []string{"mirror", "proxy", "fetch"} {
		for _, client := range []struct {
			name string
			cmds func(u string) [][]string
		}{
			{"FETCHCOMMAND", func(u string) [][]string { return [][]string{fetch(u)} }},
			{"FETCHCOMMAND then RESUMECOMMAND", func(u string) [][]string { return [][]string{fetch(u), resume(u)} }},
			{"classic RESUMECOMMAND", func(u string) [][]string { return [][]string{classic(u), classic(u)} }},
			{"curl then curl -C -", func(u string) [][]string { return [][]string{{curl, "-sS", "-o", "out", u}, curlResume(u)} }},
			{"curl --retry -C -", func(u string) [][]string { return [][]string{curlRetry(u)} }},
		} {
			t.Run(mode+"/"+client.name, func(t *testing.T) {
				a, aReqs := slowMirror(t, name, bad)
				b, _ := slowMirror(t, name, good)
				st, err := distcache.OpenStore(t.TempDir(), nil)
				if err != nil {
					t.Fatal(err)
				}
				defer st.Close()
				c, err := distcache.New(distcache.Options{Store: st, Mirrors: []string{a.URL, b.URL}, Verifier: ver, IdleTimeout: 10 * time.Second})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				pol, err := NewPolicy([]string{a.URL, b.URL}, nil)
				if err != nil {
					t.Fatal(err)
				}
				access := &testutil.Buffer{}
				srv, err := New(Options{Cache: FromDistcache(c), Policy: pol, Verifier: ver, AccessLog: access})
				if err != nil {
					t.Fatal(err)
				}
				ts := serveFront(t, srv)
				defer ts.Close()

				var u string
				var env []string
				switch mode {
				case "mirror":
					u = ts.URL + "/distfiles/" + name
				case "proxy":
					u = a.URL + "/distfiles/" + name
					env = []string{"http_proxy=" + ts.URL}
				case "fetch":
					u = ts.URL + "/fetch/" + name + "?uri=" + a.URL + "/distfiles/" + url.PathEscape(name)
				}
				dir := t.TempDir()
				var last runResult
				for i, args := range client.cmds(u) {
					last = runClient(t, dir, env, filepath.Base(args[0]), args[1:]...)
					got, _ := os.ReadFile(filepath.Join(dir, "out"))
					t.Logf("run %d %v: exit %d, %d bytes, good=%v\n%s", i, args[1:], last.code, len(got), bytes.Equal(got, good), last.out)
					if last.code == 0 && !bytes.Equal(got, good) {
						t.Fatalf("%v exited 0 with a wrong file (%d bytes, corrupt head=%v):\n%s\naccess log:\n%s",
							args, len(got), len(got) >= 4096 && bytes.Equal(got[:4096], bad[:4096]), last.out, access)
					}
					if last.code == 0 {
						break
					}
				}
				if aReqs.Load() == 0 {
					t.Fatal("the corrupt mirror was never asked: the test did not exercise the hazard")
				}
				// The cache holds only the good copy.
				if f, _, err := st.Open(distcache.DistfilesPrefix + name); err == nil {
					var buf bytes.Buffer
					buf.ReadFrom(f)
					f.Close()
					if !bytes.Equal(buf.Bytes(), good) {
						t.Fatal("the cache kept a wrong copy")
					}
				}
				t.Logf("access log:\n%s", access)
			})
		}
	}
}
