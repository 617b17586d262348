package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/testutil"
	"github.com/lanmirror/lanmirror/internal/tree"
)

// holdingUpstream is a mirror whose "big" file sends half of its body,
// then holds the rest until release is closed.
type holdingUpstream struct {
	ts       *httptest.Server
	files    map[string][]byte
	hold     string
	halfSent chan struct{}
	release  chan struct{}
}

func newHoldingUpstream(t *testing.T, files map[string][]byte, hold string) *holdingUpstream {
	u := &holdingUpstream{files: files, hold: hold, halfSent: make(chan struct{}), release: make(chan struct{})}
	u.ts = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(func() {
		select {
		case <-u.release:
		default:
			close(u.release)
		}
		u.ts.Close()
	})
	return u
}

func (u *holdingUpstream) serve(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/distfiles/")
	data, ok := u.files[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if name == "fail.tar" {
		http.Error(w, "upstream broken", http.StatusInternalServerError)
		return
	}
	if name != u.hold {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(http.StatusOK)
	w.Write(data[:len(data)/2])
	w.(http.Flusher).Flush()
	close(u.halfSent)
	select {
	case <-u.release:
	case <-r.Context().Done():
		return
	}
	w.Write(data[len(data)/2:])
}

// chromiumDOM loads url in headless Chromium and returns the DOM it
// renders; with screenshot != "" it also saves a PNG of the page.
func chromiumDOM(t *testing.T, url, screenshot string) string {
	t.Helper()
	chromium := testutil.RequireTool(t, "chromium")
	home := t.TempDir()
	args := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + filepath.Join(home, "profile"),
	}
	run := func(extra ...string) []byte {
		ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, chromium, append(append(args, extra...), url)...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("chromium %s: %v\n%s", strings.Join(extra, " "), err, stderr.String())
		}
		return out
	}
	dom := run("--dump-dom")
	if screenshot != "" {
		run("--window-size=1100,900", "--screenshot="+screenshot)
	}
	return string(dom)
}

// The status page as a person sees it in a browser: after one miss and
// one hit the hit ratio is 50%, a download in progress has a progress bar
// at the bytes received of the total, the tree's age and the rsync
// session are shown. The plain-text form says the same for curl.
func TestStatusPageInChromium(t *testing.T) {
	rsync := testutil.RequireTool(t, "rsync")
	testutil.RequireTool(t, "chromium")
	small := htData(30_000, 1)
	big := htData(3<<20, 2)
	fail := htData(1000, 3)
	up := newHoldingUpstream(t, map[string][]byte{"small.tar": small, "big.tar": big, "fail.tar": fail}, "big.tar")
	treeDir := htTree(t, map[string][]byte{"small.tar": small, "big.tar": big, "fail.tar": fail})
	// The tree is two hours and a bit old.
	stampTime := time.Now().Add(-2*time.Hour - 5*time.Minute).UTC()
	stamp := stampTime.Format(tree.TimestampLayout)
	if err := os.WriteFile(filepath.Join(treeDir, "metadata", "timestamp.chk"), []byte(stamp+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr, rsyncAddr := htFreeAddr(t), htFreeAddr(t)
	htStartBinary(t, htBinary(t), addr, "--data", t.TempDir(), "--mirror", up.ts.URL, "--tree", treeDir, "--rsync", rsyncAddr)
	base := "http://" + addr

	get := func(path string) (int, []byte, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, b, resp.Header.Get("Content-Type")
	}
	// One miss (answered once the tree's DIST index is loaded), one hit.
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, body, _ := get("/distfiles/small.tar")
		if code == http.StatusOK {
			if !bytes.Equal(body, small) {
				t.Fatal("small.tar: wrong bytes")
			}
			break
		}
		if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("small.tar: %d %s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code, body, _ := get("/distfiles/small.tar"); code != http.StatusOK || !bytes.Equal(body, small) {
		t.Fatalf("small.tar again: %d", code)
	}
	// An upstream failure (not a miss: nothing was served).
	if code, _, _ := get("/distfiles/fail.tar"); code != http.StatusBadGateway {
		t.Fatalf("fail.tar: %d, want 502", code)
	}
	// One rsync session.
	if out, err := exec.Command(rsync, "-a", "--timeout=60", "rsync://"+rsyncAddr+"/gentoo-portage/", t.TempDir()+"/").CombinedOutput(); err != nil {
		t.Fatalf("rsync: %v\n%s", err, out)
	}
	// A download held half way.
	bigDone := make(chan error, 1)
	go func() {
		resp, err := http.Get(base + "/distfiles/big.tar")
		if err != nil {
			bigDone <- err
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && !bytes.Equal(b, big) {
			err = fmt.Errorf("big.tar: %d wrong bytes", len(b))
		}
		bigDone <- err
	}()
	select {
	case <-up.halfSent:
	case err := <-bigDone:
		t.Fatalf("big.tar ended early: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the upstream never sent half of big.tar")
	}
	half := len(big) / 2
	// Wait until lanmirror has written the half it got.
	want := fmt.Sprintf("  big.tar: %d of %d bytes (50%%)", half, len(big))
	var text string
	for deadline := time.Now().Add(30 * time.Second); ; {
		code, body, ctype := get("/")
		text = string(body)
		if code != 200 || !strings.HasPrefix(ctype, "text/plain") {
			t.Fatalf("status page for a client without text/html: %d %s", code, ctype)
		}
		if strings.Contains(text, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the plain-text status never shows %q:\n%s", want, text)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, w := range []string{
		"active downloads: 1\n",
		"hit ratio: 50% (1 hits, 1 misses)\n",
		fmt.Sprintf("bytes saved: %d ", len(small)),
		"rsync sessions: 0 active, 1 total, ",
		`GET "/distfiles/small.tar" 200 30000 HIT`,
	} {
		if !strings.Contains(text, w) {
			t.Errorf("plain-text status lacks %q:\n%s", w, text)
		}
	}

	// The age is shown to the minute; the test may take a few.
	if !regexp.MustCompile(`, timestamp \S+, age 2h[5-9]m0s\n`).MatchString(text) {
		t.Errorf("plain-text status lacks the tree age:\n%s", text)
	}
	dom := chromiumDOM(t, base+"/", os.Getenv("LANMIRROR_STATUS_SCREENSHOT"))
	checks := []struct {
		what string
		re   string
	}{
		{"the hit ratio", `id="hit-ratio"><div class="v">50%</div>`},
		{"a progress bar at half of big.tar", fmt.Sprintf(`<td>big\.tar</td>\s*<td><progress value="%d" max="%d">50%%</progress> 50%%</td>`, half, len(big))},
		{"the tree age", `id="tree-age">2h[5-9]m0s<`},
		{"the tree timestamp", regexp.QuoteMeta(stampTime.Format("2006-01-02 15:04:05 UTC"))},
		{"the rsync sessions", `1 in total`},
		{"the bytes saved", `id="saved"><div class="v">29\.3 KiB</div>`},
		{"the recent requests", `GET &#34;/distfiles/small.tar&#34; 200 30000 HIT|GET "/distfiles/small.tar" 200 30000 HIT`},
	}
	for _, c := range checks {
		if !regexp.MustCompile(c.re).MatchString(dom) {
			t.Errorf("the page in Chromium does not show %s (%s):\n%s", c.what, c.re, dom)
		}
	}
	if strings.Contains(dom, "<script") {
		t.Error("the status page has a script")
	}

	// /metrics: the tree age, the rsync session, per-mirror errors and
	// latency.
	_, m, _ := get("/metrics")
	mirror := strconv.Quote(up.ts.URL)
	for _, re := range []string{
		`(?m)^lanmirror_tree_age_seconds 7[5-9]\d\d(\.\d+)?(e\+\d+)?$`,
		`(?m)^lanmirror_rsync_sessions_total\{module="gentoo-portage",result="ok"\} 1$`,
		`(?m)^lanmirror_rsync_active_sessions\{module="gentoo-portage"\} 0$`,
		`(?m)^lanmirror_rsync_sent_bytes_total [1-9]`,
		`(?m)^lanmirror_upstream_errors_total\{error="500",mirror=` + regexp.QuoteMeta(mirror) + `\} [1-9]`,
		`(?m)^lanmirror_upstream_latency_seconds_count\{mirror=` + regexp.QuoteMeta(mirror) + `\} [3-9]`,
		`(?m)^lanmirror_upstream_latency_seconds_bucket\{mirror=` + regexp.QuoteMeta(mirror) + `,le="\+Inf"\} [3-9]`,
	} {
		if !regexp.MustCompile(re).Match(m) {
			t.Errorf("/metrics lacks %s:\n%s", re, grepLanmirror(m))
		}
	}

	close(up.release)
	select {
	case err := <-bigDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("big.tar does not complete after the release")
	}
}

// grepLanmirror keeps the lanmirror_ lines of a metrics page.
func grepLanmirror(m []byte) string {
	var b strings.Builder
	for _, l := range strings.Split(string(m), "\n") {
		if strings.HasPrefix(l, "lanmirror_") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
