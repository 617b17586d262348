package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/lanmirror/lanmirror/internal/acl"
	"github.com/lanmirror/lanmirror/internal/binpkg"
	"github.com/lanmirror/lanmirror/internal/config"
	"github.com/lanmirror/lanmirror/internal/distcache"
	"github.com/lanmirror/lanmirror/internal/gentoo"
	"github.com/lanmirror/lanmirror/internal/httpd"
	"github.com/lanmirror/lanmirror/internal/objstore"
	"github.com/lanmirror/lanmirror/internal/status"
)

// openHTTP binds the HTTP listener and builds the cache and the routes.
func (s *server) openHTTP(ctx context.Context) (func(context.Context) error, error) {
	cfg := s.cfg
	allow := acl.Default()
	if len(cfg.Allow) > 0 {
		var err error
		if allow, err = acl.Parse(cfg.Allow...); err != nil {
			return nil, fmt.Errorf("--allow: %w", err)
		}
	}
	// The peers are upstreams too (a node streams from the node that
	// downloads a file).
	policy, err := httpd.NewPolicy(append(append(append([]string(nil), cfg.Mirrors...), cfg.BinhostUpstream, cfg.UpstreamProxy), cfg.Peers...), cfg.ProxyAllowHosts)
	if err != nil {
		return nil, err
	}
	client, err := upstreamClient(policy, cfg.UpstreamProxy, cfg.Peers...)
	if err != nil {
		return nil, err
	}
	store, err := s.distStore()
	if err != nil {
		return nil, err
	}
	verifier := s.verifier()
	opts := distcache.Options{
		Store: store, Mirrors: cfg.Mirrors, Client: client, Verifier: verifier, Log: s.log,
		LeaseTTL: cfg.LeaseTTL, Peer: cfg.AdvertiseURL, HotCache: cfg.LocalCache, Peers: cfg.Peers,
		IndexWait: cfg.TreeIndexWait,
	}
	stats := storeStats(store)
	var health func(context.Context) error
	if cfg.RemoteStore() {
		remote, err := openRemote(ctx, cfg)
		if err != nil {
			return nil, err
		}
		opts.Remote, stats, health = remote, remoteStats(remote), remote.Check
		s.log.Info("cached objects on object storage", "store", remote.String(), "endpoint", cfg.S3Endpoint)
	}
	cache, err := distcache.New(opts)
	if err != nil {
		return nil, err
	}
	var binpkgs http.Handler
	if cfg.Binpkgs != "" {
		if binpkgs, err = binpkg.NewHandler(cfg.Binpkgs, s.log); err != nil {
			return nil, err
		}
	}
	s.status.SetCache(stats)
	s.status.SetDownloads(func() []status.Download {
		var ds []status.Download
		for _, p := range cache.Downloads() {
			ds = append(ds, status.Download{Name: strings.TrimPrefix(p.Key, distcache.DistfilesPrefix), Written: p.Written, Size: p.Size})
		}
		return ds
	})
	srv, err := httpd.New(httpd.Options{
		Cache:           httpd.FromDistcache(cache),
		Allow:           allow,
		Policy:          policy,
		Verifier:        verifier,
		LayoutConf:      gentoo.ServedLayoutConf(),
		Aliases:         cfg.Aliases,
		Binpkgs:         binpkgs,
		BinhostUpstream: cfg.BinhostUpstream,
		Stats:           stats,
		Health:          health,
		Status:          s.status,
		AccessLog:       s.accessLog,
		Log:             s.log,

		ReadHeaderTimeout: cfg.HTTPHeaderTimeout,
		WriteIdleTimeout:  cfg.HTTPWriteTimeout,
		MaxConnsPerClient: cfg.MaxConnsPerClient,
	})
	if err != nil {
		return nil, err
	}
	s.httpSrv, s.cache, s.policy = srv, cache, policy
	if up, ok := binpkgs.(*binpkg.Handler); ok && cfg.BinhostUpstream != "" {
		// The local index lists the upstream packages too; their files
		// come from the upstream cache (local 404 → upstream).
		up.SetUpstream(srv.UpstreamPackages)
	}
	ln := s.httpLn
	if ln == nil {
		if ln, err = listenHTTP(cfg.HTTPAddr); err != nil {
			srv.Close()
			return nil, err
		}
	}
	s.log.Info("http listening", "addr", ln.Addr().String(), "mirrors", cfg.Mirrors, "allow", allow.String())
	hs := srv.HTTPServer(slog.NewLogLogger(s.log.Handler(), slog.LevelWarn))
	ln = srv.Listener(ln)
	return func(ctx context.Context) error {
		errc := make(chan error, 1)
		go func() { errc <- hs.Serve(ln) }()
		var serveErr error
		select {
		case <-ctx.Done():
			// Drain: no new connections; requests in flight (downloads)
			// may finish within the drain timeout, then are cut.
			sctx, cancel := context.WithTimeout(context.Background(), s.drainTimeout())
			if err := hs.Shutdown(sctx); err != nil {
				s.log.Warn("http: transfers still running at the end of the drain timeout are cut", "timeout", s.drainTimeout())
				hs.Close()
			}
			cancel()
			<-errc
		case serveErr = <-errc:
		}
		cache.Close()
		srv.Close()
		if c, ok := binpkgs.(io.Closer); ok {
			c.Close()
		}
		if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
			return serveErr
		}
		return nil
	}, nil
}

// openRemote opens and checks the S3 store of --store.
func openRemote(ctx context.Context, cfg *config.Serve) (*objstore.S3, error) {
	remote, err := objstore.NewS3(objstore.S3Config{URL: cfg.Store, Endpoint: cfg.S3Endpoint, Region: cfg.S3Region})
	if err != nil {
		return nil, fmt.Errorf("--store: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := remote.Check(cctx); err != nil {
		return nil, fmt.Errorf("--store %s: %w", cfg.Store, err)
	}
	return remote, nil
}

// storeStats reports the distfiles cache size for the status page.
func storeStats(store *distcache.Store) httpd.Stats {
	return cachedStats(func() ([]int64, error) {
		ents, err := store.Entries(distcache.DistfilesPrefix)
		sizes := make([]int64, len(ents))
		for i, e := range ents {
			sizes[i] = e.Size
		}
		return sizes, err
	})
}

// remoteStats is storeStats for objects on object storage.
func remoteStats(remote objstore.Backend) httpd.Stats {
	return cachedStats(func() ([]int64, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		ents, err := remote.List(ctx, distcache.DistfilesPrefix)
		sizes := make([]int64, len(ents))
		for i, e := range ents {
			sizes[i] = e.Size
		}
		return sizes, err
	})
}

// cachedStats sums the object sizes that list returns, asking it at most
// once a minute (also after a failure: the last figures stay).
func cachedStats(list func() ([]int64, error)) httpd.Stats {
	var mu sync.Mutex
	var at time.Time
	var size int64
	var files int
	return func() (int64, int) {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(at) > time.Minute {
			if sizes, err := list(); err == nil {
				size, files = 0, len(sizes)
				for _, n := range sizes {
					size += n
				}
			}
			at = time.Now()
		}
		return size, files
	}
}

// listenHTTP binds the HTTP listener.
func listenHTTP(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return ln, nil
}

// upstreamClient is the client of every upstream request (mirrors,
// fetch-through origins, the upstream binhost): the policy's, through
// proxy when one is set (the proxy's address is allowed by the policy;
// destinations are still checked before a request is accepted). The
// direct URLs (the cluster's peers, on the LAN) are not proxied.
func upstreamClient(policy *httpd.Policy, proxy string, direct ...string) (*http.Client, error) {
	c := policy.Client()
	if proxy == "" {
		return c, nil
	}
	u, err := url.Parse(proxy)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--upstream-proxy %q: want http://host:port", proxy)
	}
	tr, ok := c.Transport.(*http.Transport)
	if !ok {
		return nil, fmt.Errorf("--upstream-proxy: unexpected transport %T", c.Transport)
	}
	noProxy := map[string]bool{}
	for _, d := range direct {
		if du, err := url.Parse(d); err == nil && du.Host != "" {
			noProxy[du.Host] = true
		}
	}
	tr.Proxy = func(r *http.Request) (*url.URL, error) {
		if noProxy[r.URL.Host] {
			return nil, nil
		}
		return u, nil
	}
	return c, nil
}
