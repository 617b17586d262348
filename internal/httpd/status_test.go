package httpd

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/distcache"
	"github.com/lanmirror/lanmirror/internal/status"
)

func fetchStatus(t *testing.T, url, accept string) (string, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("status page: %d", resp.StatusCode)
	}
	return resp.Header.Get("Content-Type"), string(b)
}

// The status page shows what the Board's sources report and the server's
// own hit counts: HTML for browsers, text for curl and scripts.
func TestStatusPageFigures(t *testing.T) {
	board := &status.Board{}
	board.SetCache(func() (int64, int) { return 3 << 30, 42 })
	board.SetDownloads(func() []status.Download {
		return []status.Download{
			{Name: "gcc-14.2.0.tar.xz", Written: 25, Size: 100},
			{Name: `<script>alert(1)</script>.tar`, Written: 7, Size: -1},
		}
	})
	published := time.Now().Add(-90 * time.Minute)
	board.SetTree(func() (status.Tree, bool) {
		return status.Tree{Path: "/var/cache/lanmirror/tree/current", Snapshot: "20261203-1", Published: published}, true
	})
	board.SetRsync(func() status.Rsync { return status.Rsync{Active: 2, Total: 17, Bytes: 5 << 20} })
	e := startServer(t, Options{Status: board})
	data := testData(4000, 1)
	e.cache.put("hit.tar", &fakeObject{data: data, outcome: distcache.Hit})
	e.cache.put("miss.tar", &fakeObject{data: data[:1000], outcome: distcache.Miss})
	e.cache.put("join.tar", &fakeObject{data: data[:500], outcome: distcache.Join})
	for _, n := range []string{"hit.tar", "miss.tar", "join.tar", "nothere.tar"} {
		resp, err := http.Get(e.url + "/distfiles/" + n)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	ctype, text := fetchStatus(t, e.url+"/", "")
	if !strings.HasPrefix(ctype, "text/plain") {
		t.Errorf("no Accept: %s, want text/plain", ctype)
	}
	for _, want := range []string{
		"lanmirror\n\nuptime: ",
		"cache: 42 files, 3221225472 bytes (3072.0 MiB)\n",
		"active downloads: 2\n  gcc-14.2.0.tar.xz: 25 of 100 bytes (25%)\n  <script>alert(1)</script>.tar: 7 bytes (size unknown)\n",
		"hit ratio: 67% (2 hits, 1 misses)\n",
		"bytes saved: 4500 (4.4 KiB)\n",
		"tree: /var/cache/lanmirror/tree/current (snapshot 20261203-1), timestamp ",
		", age 1h30m0s\n",
		"rsync sessions: 2 active, 17 total, 5242880 bytes sent\n",
		"\nrecent requests (newest first):\n",
		`GET "/distfiles/hit.tar" 200 4000 HIT`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text status lacks %q:\n%s", want, text)
		}
	}
	if ctype, t2 := fetchStatus(t, e.url+"/", "text/plain"); !strings.HasPrefix(ctype, "text/plain") || !strings.HasPrefix(t2, "lanmirror\n\nuptime: ") {
		t.Errorf("Accept: text/plain: %s\n%s", ctype, t2)
	}

	ctype, page := fetchStatus(t, e.url+"/", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	if !strings.HasPrefix(ctype, "text/html") {
		t.Fatalf("browser Accept: %s, want text/html", ctype)
	}
	for _, re := range []string{
		`id="hit-ratio"><div class="v">67%</div>`,
		`<progress value="25" max="100">25%</progress>`,
		`&lt;script&gt;alert\(1\)&lt;/script&gt;.tar</td>\s*<td><progress></progress>`,
		`id="cache"><div class="v">3\.0 GiB</div><div class="l">cache, 42 files`,
		`id="rsync"><div class="v">2 active</div><div class="l">rsync sessions, 17 in total, 5\.0 MiB sent`,
		`id="tree-age">1h30m0s<`,
		`20261203-1, published `,
		`GET &#34;/distfiles/miss.tar&#34; 200 1000 MISS`,
	} {
		if !regexp.MustCompile(re).MatchString(page) {
			t.Errorf("HTML status lacks %s:\n%s", re, page)
		}
	}
	if strings.Contains(page, "<script>") {
		t.Error("a download name reached the page unescaped")
	}
	if _, err := http.Head(e.url + "/"); err != nil {
		t.Fatal(err)
	}
}

// Without sources the page still renders, saying there is nothing.
func TestStatusPageWithoutSources(t *testing.T) {
	e := startServer(t, Options{})
	_, text := fetchStatus(t, e.url+"/", "*/*")
	if !strings.Contains(text, "active downloads: 0\n") || !strings.Contains(text, "hit ratio: - (0 hits, 0 misses)\n") || strings.Contains(text, "tree:") || strings.Contains(text, "rsync") {
		t.Errorf("text status without sources:\n%s", text)
	}
	_, page := fetchStatus(t, e.url+"/", "text/html")
	for _, want := range []string{"no tree served", "<h2>Downloads in progress</h2>\n<p class=\"none\">none</p>"} {
		if !strings.Contains(page, want) {
			t.Errorf("HTML status lacks %q:\n%s", want, page)
		}
	}
}

func TestWantsHTML(t *testing.T) {
	for accept, want := range map[string]bool{
		"":                      false,
		"*/*":                   false,
		"text/plain":            false,
		"text/html":             true,
		"TEXT/HTML; charset=x":  true,
		"text/html;q=0, */*":    false,
		"application/json":      false,
		"text/plain, text/html": true,
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Accept", accept)
		if got := wantsHTML(r); got != want {
			t.Errorf("wantsHTML(%q) = %v", accept, got)
		}
	}
}

// /metrics has the tree age from the Board.
func TestMetricsTreeAge(t *testing.T) {
	board := &status.Board{}
	e := startServer(t, Options{Status: board})
	_, m := fetchStatus(t, e.url+"/metrics", "")
	if strings.Contains(m, "lanmirror_tree_age_seconds ") {
		t.Errorf("tree age without a tree:\n%s", m)
	}
	board.SetTree(func() (status.Tree, bool) {
		return status.Tree{Path: "/x", Timestamp: time.Now().Add(-time.Hour)}, true
	})
	_, m = fetchStatus(t, e.url+"/metrics", "")
	if !regexp.MustCompile(`(?m)^lanmirror_tree_age_seconds 36\d\d(\.\d+)?$`).MatchString(m) {
		t.Errorf("no tree age of about an hour:\n%s", m)
	}
}
