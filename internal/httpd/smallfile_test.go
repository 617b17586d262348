package httpd

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/distcache"
	"github.com/lanmirror/lanmirror/internal/testutil"
)

// TestSmallFileHitsFromMemory: a cached small distfile (kept in memory by
// distcache) gets exactly the answers a large one (sent from its file)
// gets: 200 with the whole body, 206 for a range and a suffix range, 416,
// HEAD without a body, 304 for If-Modified-Since, If-Range with the ETag;
// and stock curl downloads both byte for byte.
func TestSmallFileHitsFromMemory(t *testing.T) {
	files := map[string][]byte{
		"small.tar.gz": testData(40<<10, 3),
		"large.tar.gz": testData(distcache.DefaultSmallFileMax+5000, 4),
	}
	c, st := cacheOf(t, files, time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC))
	access := &testutil.Buffer{}
	srv, err := New(Options{Cache: FromDistcache(c), AccessLog: access})
	if err != nil {
		t.Fatal(err)
	}
	ts := serveFront(t, srv)
	defer ts.Close()

	do := func(method, u string, hdr ...string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, u, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	for name, data := range files {
		u := ts.URL + "/distfiles/" + name
		size := len(data)
		for round := range 3 { // the first hit reads the file, later ones memory
			resp, body := do("GET", u)
			if resp.StatusCode != 200 || !bytes.Equal(body, data) || resp.Header.Get("Content-Length") != fmt.Sprint(size) {
				t.Fatalf("%s round %d: %d, %d bytes", name, round, resp.StatusCode, len(body))
			}
			if lm := resp.Header.Get("Last-Modified"); lm != "Fri, 01 Mar 2024 12:00:00 GMT" {
				t.Errorf("%s: Last-Modified %q", name, lm)
			}
			etag := resp.Header.Get("ETag")
			if etag == "" || resp.Header.Get("Accept-Ranges") != "bytes" || resp.Header.Get("X-Cache") != "HIT" {
				t.Errorf("%s: headers %v", name, resp.Header)
			}
			resp, body = do("GET", u, "Range", "bytes=100-199")
			if resp.StatusCode != 206 || !bytes.Equal(body, data[100:200]) ||
				resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 100-199/%d", size) {
				t.Errorf("%s range: %d %q, %d bytes", name, resp.StatusCode, resp.Header.Get("Content-Range"), len(body))
			}
			resp, body = do("GET", u, "Range", "bytes=-10")
			if resp.StatusCode != 206 || !bytes.Equal(body, data[size-10:]) {
				t.Errorf("%s suffix range: %d, %d bytes", name, resp.StatusCode, len(body))
			}
			resp, _ = do("GET", u, "Range", fmt.Sprintf("bytes=%d-", size))
			if resp.StatusCode != 416 || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", size) {
				t.Errorf("%s: unsatisfiable range: %d %q", name, resp.StatusCode, resp.Header.Get("Content-Range"))
			}
			resp, body = do("HEAD", u)
			if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != int64(size) {
				t.Errorf("%s HEAD: %d, %d bytes, length %d", name, resp.StatusCode, len(body), resp.ContentLength)
			}
			resp, body = do("GET", u, "If-Modified-Since", "Fri, 01 Mar 2024 12:00:00 GMT")
			if resp.StatusCode != 304 || len(body) != 0 {
				t.Errorf("%s If-Modified-Since: %d, %d bytes", name, resp.StatusCode, len(body))
			}
			resp, body = do("GET", u, "Range", "bytes=1000-", "If-Range", etag)
			if resp.StatusCode != 206 || !bytes.Equal(body, data[1000:]) {
				t.Errorf("%s If-Range with the ETag: %d, %d bytes", name, resp.StatusCode, len(body))
			}
			resp, body = do("GET", u, "Range", "bytes=1000-", "If-Range", `"other"`)
			if resp.StatusCode != 200 || !bytes.Equal(body, data) {
				t.Errorf("%s If-Range with another tag: %d, %d bytes", name, resp.StatusCode, len(body))
			}
		}
		out := filepath.Join(t.TempDir(), name)
		r := runClient(t, filepath.Dir(out), nil, "curl", "-sS", "-o", out, u)
		if got, _ := os.ReadFile(out); r.code != 0 || !bytes.Equal(got, data) {
			t.Errorf("curl %s: exit %d, %d bytes\n%s", name, r.code, len(got), r.out)
		}
	}
	if n, total := st.SmallFiles(); n != 1 || total != int64(len(files["small.tar.gz"])) {
		t.Errorf("%d files, %d bytes in memory: want the small file only", n, total)
	}
	if !strings.Contains(access.String(), `GET "/distfiles/small.tar.gz" 206 100 HIT`) {
		t.Errorf("access log:\n%s", access)
	}
}
