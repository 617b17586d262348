// Command loadgen drives one running lanmirror with many clients at once
// (bench/load.sh starts lanmirror and this program): HTTP clients asking
// for cache hits, for misses of the same new files at once (downloaded
// from the upstream mirror loadgen serves itself, so every client of a
// miss shares one download) and for Ranges, and stock rsync clients doing
// no-op syncs of a tree. Every answer is checked byte for byte against
// what the upstream serves; any error makes loadgen exit 1. It prints the
// request counts, the errors and the latency percentiles per kind.
//
//	loadgen -upstream 127.0.0.1:PORT -serve-upstream   # the upstream mirror only
//	loadgen -http http://127.0.0.1:8080 -rsync rsync://127.0.0.1:8873/gentoo-portage/ -dest DIR \
//	    -clients 1000 -rsync-clients 100 -duration 60s
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// corpus caches content's results.
type corpus struct{ m sync.Map }

// content returns the bytes the upstream serves for name: deterministic,
// 16 KiB to 272 KiB.
func (c *corpus) content(name string) []byte {
	if b, ok := c.m.Load(name); ok {
		return b.([]byte)
	}
	b := makeContent(name)
	c.m.Store(name, b)
	return b
}

func makeContent(name string) []byte {
	sum := sha256.Sum256([]byte(name))
	n := 16<<10 + int(binary.LittleEndian.Uint32(sum[:4])%(256<<10))
	out := make([]byte, 0, n+32)
	for i := uint64(0); len(out) < n; i++ {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], i)
		s := sha256.Sum256(append(sum[:], b[:]...))
		out = append(out, s[:]...)
	}
	return out[:n]
}

// upstream serves /distfiles/<name> with content(name), slowly enough
// (about 4 MB/s per download) that a miss lasts a while and other
// clients join it.
func upstream(addr string, c *corpus) error {
	var gets atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/distfiles/", func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/distfiles/")
		if name == "" || strings.Contains(name, "/") || name == "layout.conf" {
			http.NotFound(w, r)
			return
		}
		gets.Add(1)
		data := c.content(name)
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.Header().Set("Last-Modified", time.Unix(1e9, 0).UTC().Format(http.TimeFormat))
		if r.Method == http.MethodHead {
			return
		}
		for len(data) > 0 {
			k := min(len(data), 32<<10)
			if _, err := w.Write(data[:k]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			data = data[k:]
			time.Sleep(8 * time.Millisecond)
		}
	})
	mux.HandleFunc("/gets", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, gets.Load()) })
	return http.ListenAndServe(addr, mux)
}

// stats collects latencies and errors of one kind of request.
type stats struct {
	mu     sync.Mutex
	lat    []time.Duration
	errs   int
	sample []string
}

func (s *stats) ok(d time.Duration) {
	s.mu.Lock()
	s.lat = append(s.lat, d)
	s.mu.Unlock()
}

func (s *stats) fail(err error) {
	s.mu.Lock()
	s.errs++
	if len(s.sample) < 5 {
		s.sample = append(s.sample, err.Error())
	}
	s.mu.Unlock()
}

func pct(l []time.Duration, p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	i := int(float64(len(l)-1) * p)
	return l[i]
}

func (s *stats) line(kind string, secs float64) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	slices.Sort(s.lat)
	return fmt.Sprintf("| %s | %d | %.0f/s | %d | %s | %s | %s | %s |", kind, len(s.lat), float64(len(s.lat))/secs, s.errs,
		pct(s.lat, 0.5).Round(100*time.Microsecond), pct(s.lat, 0.99).Round(100*time.Microsecond),
		pct(s.lat, 1).Round(time.Millisecond), strings.Join(s.sample, "; "))
}

type gen struct {
	corpus
	base               string
	client             *http.Client
	hits               []string
	missEpoch          func() int64
	hit, miss, rng, rs stats
}

// get fetches path (with a Range header when rng != "") and checks the
// bytes against want.
func (g *gen) get(ctx context.Context, path, rng string, wantCode int, want []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.base+path, nil)
	if err != nil {
		return err
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s: body: %w", path, err)
	}
	if resp.StatusCode != wantCode {
		return fmt.Errorf("GET %s %s: status %d, want %d: %.100q", path, rng, resp.StatusCode, wantCode, body)
	}
	if !bytes.Equal(body, want) {
		return fmt.Errorf("GET %s %s: %d bytes differ from the %d expected", path, rng, len(body), len(want))
	}
	return nil
}

// httpClient runs one client until ctx ends: 60 % hits, 20 % misses of
// the file of the current epoch (every client asking in the same 2 s asks
// for the same new file), 20 % Ranges of a hit.
func (g *gen) httpClient(ctx context.Context, id int) {
	r := rand.New(rand.NewPCG(uint64(id), 7))
	for ctx.Err() == nil {
		start := time.Now()
		var err error
		var st *stats
		switch x := r.IntN(10); {
		case x < 6:
			st = &g.hit
			name := g.hits[r.IntN(len(g.hits))]
			err = g.get(ctx, "/distfiles/"+name, "", 200, g.content(name))
		case x < 8:
			st = &g.miss
			name := fmt.Sprintf("miss-%d-%d.tar.gz", g.missEpoch(), r.IntN(3))
			err = g.get(ctx, "/distfiles/"+name, "", 200, g.content(name))
		default:
			st = &g.rng
			name := g.hits[r.IntN(len(g.hits))]
			data := g.content(name)
			a := r.IntN(len(data))
			b := a + r.IntN(len(data)-a)
			err = g.get(ctx, "/distfiles/"+name, fmt.Sprintf("bytes=%d-%d", a, b), 206, data[a:b+1])
		}
		if ctx.Err() != nil && err != nil {
			return // the run ended in the middle of a request
		}
		if err != nil {
			st.fail(err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		st.ok(time.Since(start))
	}
}

// rsyncClient runs no-op syncs of url into dest until ctx ends, with
// Portage's options; a sync that transfers a file is an error too.
func (g *gen) rsyncClient(ctx context.Context, url, dest string) {
	args := []string{"--recursive", "--links", "--safe-links", "--perms", "--times", "--omit-dir-times", "--compress",
		"--force", "--whole-file", "--delete", "--stats", "--timeout=180", "--exclude=/distfiles",
		"--exclude=/local", "--exclude=/packages", "--exclude=/.git", url, dest + "/"}
	for ctx.Err() == nil {
		start := time.Now()
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		out, err := exec.CommandContext(cctx, "rsync", args...).CombinedOutput()
		cancel()
		switch {
		case err != nil:
			g.rs.fail(fmt.Errorf("rsync: %v: %.300s", err, out))
			time.Sleep(100 * time.Millisecond)
		case !strings.Contains(string(out), "Number of regular files transferred: 0"):
			g.rs.fail(fmt.Errorf("rsync: not a no-op: %.300s", out))
		default:
			g.rs.ok(time.Since(start))
		}
	}
}

func main() {
	serveUp := flag.Bool("serve-upstream", false, "only serve the upstream mirror on -upstream")
	upAddr := flag.String("upstream", "127.0.0.1:0", "upstream mirror address (with -serve-upstream)")
	base := flag.String("http", "", "lanmirror's HTTP base URL")
	rsyncURL := flag.String("rsync", "", "rsync module URL for the no-op syncs (empty: none)")
	dest := flag.String("dest", "", "destination of the no-op syncs, already in sync")
	clients := flag.Int("clients", 1000, "concurrent HTTP clients")
	rsyncClients := flag.Int("rsync-clients", 100, "concurrent rsync clients")
	duration := flag.Duration("duration", 60*time.Second, "how long the load lasts")
	nhits := flag.Int("hit-files", 50, "files fetched before the load, then requested as hits")
	flag.Parse()

	if *serveUp {
		if err := upstream(*upAddr, &corpus{}); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
		return
	}
	if *rsyncClients <= 0 {
		*rsyncURL = ""
	}
	if *base == "" {
		fmt.Fprintln(os.Stderr, "loadgen: -http is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: *clients,
		MaxConnsPerHost:     *clients,
		DisableCompression:  true,
	}
	g := &gen{base: strings.TrimRight(*base, "/"), client: &http.Client{Transport: tr, Timeout: 2 * time.Minute}}
	for i := range *nhits {
		g.hits = append(g.hits, fmt.Sprintf("hit-%03d.tar.gz", i))
	}
	// Warm the hits (each a miss once, before the measurement).
	for _, name := range g.hits {
		if err := g.get(ctx, "/distfiles/"+name, "", 200, g.content(name)); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen: warm-up:", err)
			os.Exit(1)
		}
	}
	t0 := time.Now()
	g.missEpoch = func() int64 { return int64(time.Since(t0) / (2 * time.Second)) }

	lctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	var wg sync.WaitGroup
	for i := range *clients {
		wg.Go(func() { g.httpClient(lctx, i) })
	}
	if *rsyncURL != "" {
		if *dest == "" {
			fmt.Fprintln(os.Stderr, "loadgen: -rsync needs -dest")
			os.Exit(2)
		}
		for range *rsyncClients {
			wg.Go(func() { g.rsyncClient(lctx, *rsyncURL, *dest) })
		}
	}
	wg.Wait()
	secs := time.Since(t0).Seconds()
	tr.CloseIdleConnections()
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "loadgen: interrupted")
		os.Exit(1)
	}

	fmt.Printf("%d HTTP clients, %d rsync clients, %.0f s\n\n", *clients, map[bool]int{true: *rsyncClients}[*rsyncURL != ""], secs)
	fmt.Println("| kind | done | rate | errors | p50 | p99 | max | first errors |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	fmt.Println(g.hit.line("HTTP hit", secs))
	fmt.Println(g.miss.line("HTTP miss (shared download)", secs))
	fmt.Println(g.rng.line("HTTP Range", secs))
	if *rsyncURL != "" {
		fmt.Println(g.rs.line("rsync no-op sync", secs))
	}
	errs := g.hit.errs + g.miss.errs + g.rng.errs + g.rs.errs
	if errs > 0 {
		fmt.Fprintf(os.Stderr, "loadgen: %d errors\n", errs)
		os.Exit(1)
	}
	if len(g.hit.lat)+len(g.miss.lat)+len(g.rng.lat) == 0 {
		fmt.Fprintln(os.Stderr, "loadgen: no HTTP request completed")
		os.Exit(1)
	}
	if *rsyncURL != "" && len(g.rs.lat) == 0 {
		fmt.Fprintln(os.Stderr, "loadgen: no rsync sync completed")
		os.Exit(1)
	}
}
