// Package config is lanmirror's one configuration model and its parsers:
// the settings of `lanmirror serve` (filled from command-line flags) and the
// classic rsyncd.conf syntax for the rsync daemon's modules.
package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Default values of the serve settings.
const (
	DefaultDataDir    = "/var/cache/lanmirror"
	DefaultHTTPAddr   = ":8080"
	DefaultRsyncAddr  = ":873"
	DefaultMirror     = "https://distfiles.gentoo.org"
	DefaultModuleName = "gentoo-portage"
	// DefaultCleanGrace keeps unreferenced distfiles 30 days, as eclean-dist
	// users expect.
	DefaultCleanGrace = 30 * 24 * time.Hour
	// DefaultDrainTimeout is how long SIGTERM waits for transfers.
	DefaultDrainTimeout = 30 * time.Second
	// DefaultConfigFile is read when it exists and no --config is given.
	DefaultConfigFile = "/etc/lanmirror/lanmirror.toml"
	// DefaultTreeIndexWait: the DIST index of the full tree takes a few
	// seconds to build.
	DefaultTreeIndexWait = 30 * time.Second
)

// TreeExcludes are kept out of a served tree (server side), as Portage
// itself excludes them: a local repository may hold distfiles or packages.
var TreeExcludes = []string{"/distfiles", "/packages", "/local", "/.git"}

// Alias publishes a local directory read-only under /Name/ on the HTTP side.
type Alias struct {
	Dir  string
	Name string
}

// ParseAlias parses http-replicator's "DIR:NAME" form.
func ParseAlias(s string) (Alias, error) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 || i == len(s)-1 {
		return Alias{}, fmt.Errorf("config: alias %q: want DIR:NAME", s)
	}
	a := Alias{Dir: s[:i], Name: strings.Trim(s[i+1:], "/")}
	if a.Name == "" || strings.ContainsAny(a.Name, "/\\") || a.Name == "." || a.Name == ".." {
		return Alias{}, fmt.Errorf("config: alias %q: NAME must be one path segment", s)
	}
	if !filepath.IsAbs(a.Dir) {
		abs, err := filepath.Abs(a.Dir)
		if err != nil {
			return Alias{}, fmt.Errorf("config: alias %q: %w", s, err)
		}
		a.Dir = abs
	}
	return a, nil
}

// Serve holds every setting of the daemon. The toml tags are the keys of
// the config file (the flags' names); fields tagged "-" have their own
// representation in the file (see file.go).
type Serve struct {
	// DataDir is where all state lives; the distfiles cache is below it.
	DataDir string `toml:"data"`
	// HTTPAddr is the HTTP listen address; empty disables the HTTP side.
	HTTPAddr string `toml:"http"`
	// Mirrors are the upstream distfiles mirrors, tried in order.
	Mirrors []string `toml:"mirror"`
	// Allow lists the clients that may use the server (acl rule syntax).
	Allow []string `toml:"allow"`
	// Aliases are local directories served read-only under /NAME/.
	Aliases []Alias `toml:"alias"`
	// ProxyAllowHosts are extra destinations the forward proxy may reach.
	ProxyAllowHosts []string `toml:"proxy-allow-host"`
	// LogFile is the access log; empty means standard error.
	LogFile string `toml:"log"`

	// RsyncAddr is the rsync daemon's listen address; empty disables it.
	RsyncAddr string `toml:"rsync"`
	// RsyncdConf is the path of a classic rsyncd.conf, if any.
	RsyncdConf string `toml:"rsyncd-conf"`
	// RsyncModules are quick NAME=PATH modules given on the command line.
	RsyncModules []Module `toml:"-"`

	// Tree is a local ebuild repository whose Manifests verify distfiles;
	// with no rsync module configured it is also served as gentoo-portage.
	Tree string `toml:"tree"`
	// TreeUpstream are the rsync URLs (or local directories) the tree is
	// mirrored from into snapshots below DataDir/tree, tried in order until
	// one gives a good tree; Tree then defaults to the published snapshot.
	TreeUpstream []string `toml:"tree-upstream"`
	// TreeInterval is how often the tree is synced from TreeUpstream.
	TreeInterval time.Duration `toml:"tree-interval"`
	// TreeKeep is how many tree snapshots to keep.
	TreeKeep int `toml:"tree-keep"`
	// TreeOpenPGPKey is a file with the OpenPGP public key(s) that sign the
	// mirrored tree (Gentoo's gentoo-release.asc): each pulled tree is
	// verified against its Manifests (GLEP 74) before it is published.
	// Empty: pulled trees are published unverified.
	TreeOpenPGPKey string `toml:"tree-openpgp-key"`
	// TreeMaxAge refuses a pulled tree whose signed TIMESTAMP is older
	// (Portage's sync-rsync-verify-max-age); 0: no limit. Only with
	// TreeOpenPGPKey.
	TreeMaxAge time.Duration `toml:"tree-max-age"`
	// TreeIndexWait bounds how long a distfile request waits for the
	// tree's DIST index while it is being built (at start) before it is
	// answered 503 with Retry-After.
	TreeIndexWait time.Duration `toml:"tree-index-wait"`
	// VerifyCache re-hashes the cached distfiles against the tree's
	// Manifests in the background once the index is ready, moving
	// mismatches to DATA/quarantine; VerifyCacheInterval repeats the pass
	// (0: only at start).
	VerifyCache         bool          `toml:"verify-cache"`
	VerifyCacheInterval time.Duration `toml:"verify-cache-interval"`
	// Binpkgs is a PKGDIR served under /binpkgs/.
	Binpkgs string `toml:"binpkgs"`
	// BinhostUpstream is an upstream binhost cached under /binpkgs/.
	BinhostUpstream string `toml:"binhost-upstream"`
	// MaxCache caps the distfiles cache size in bytes; 0 means no cap.
	MaxCache int64 `toml:"-"`
	// CleanInterval is how often the daemon cleans the cache; 0 disables.
	CleanInterval time.Duration `toml:"clean-interval"`
	// CleanGrace is how long a distfile no DIST entry of the tree references
	// stays after its last use before periodic cleaning removes it.
	CleanGrace time.Duration `toml:"clean-grace"`

	// Store is where complete cached objects (distfiles, proxied URLs,
	// binhost files) live: "" (or "disk") for DataDir, or
	// s3://BUCKET[/PREFIX] for S3-compatible object storage shared by
	// several nodes.
	Store string `toml:"store"`
	// S3Endpoint is the S3 server's URL (http(s)://HOST[:PORT]); empty
	// means AWS.
	S3Endpoint string `toml:"s3-endpoint"`
	// S3Region is the bucket's region; empty: $AWS_REGION.
	S3Region string `toml:"s3-region"`
	// LeaseTTL is how long a node's claim to download a file lasts
	// without renewal (a node that dies holds the file that long); 0: the
	// default (30s).
	LeaseTTL time.Duration `toml:"lease-ttl"`
	// AdvertiseURL is this node's HTTP base URL as other nodes reach it,
	// written in its leases; may be empty.
	AdvertiseURL string `toml:"advertise-url"`
	// Peers are the other nodes' base URLs (their AdvertiseURL): a node
	// streams a file another node is downloading from that node instead
	// of waiting for it to reach the bucket.
	Peers []string `toml:"peers"`
	// LocalCache, with an S3 Store, caps the local copies of recently
	// served distfiles kept below DataDir (bytes); 0: none.
	LocalCache int64 `toml:"-"`

	// MaxConnsPerClient bounds the connections one client address may
	// hold at once, on the HTTP side and on the rsync daemon each; 0: no
	// limit.
	MaxConnsPerClient int `toml:"max-conns-per-client"`
	// HTTPHeaderTimeout bounds reading a request's headers (slowloris);
	// 0: httpd's default.
	HTTPHeaderTimeout time.Duration `toml:"http-header-timeout"`
	// HTTPWriteTimeout disconnects a client that accepts no data of an
	// answer for this long; 0: httpd's default.
	HTTPWriteTimeout time.Duration `toml:"http-write-timeout"`
	// RsyncHandshakeTimeout bounds an rsync client's handshake (greeting
	// to arguments) and, counting only the time spent waiting for the
	// client, the session setup up to the end of the file list; distinct
	// from a module's "timeout". 0: the daemon's default.
	RsyncHandshakeTimeout time.Duration `toml:"rsync-handshake-timeout"`
	// User is the user every listener runs as once bound (name or uid;
	// its group unless the rsync modules name a gid).
	User string `toml:"user"`
	// AllowRoot lets the daemon keep running as root.
	AllowRoot bool `toml:"allow-root"`
	// DrainTimeout bounds how long SIGTERM waits for in-flight transfers.
	DrainTimeout time.Duration `toml:"drain-timeout"`

	// UpstreamProxy is an HTTP proxy (http://host:port) that the
	// downloads from the mirrors, the fetch-through and the upstream
	// binhost go through (http-replicator's --external); empty: direct.
	UpstreamProxy string `toml:"upstream-proxy"`
}

// RemoteStore reports whether objects live on object storage (S3).
func (s *Serve) RemoteStore() bool { return strings.HasPrefix(s.Store, "s3://") }

// DefaultTreeMaxAge is the oldest signed tree the mirror publishes by
// default, as Portage's sync-rsync-verify-max-age (24 hours).
const DefaultTreeMaxAge = 24 * time.Hour

// Defaults returns the settings lanmirror uses when nothing is configured.
func Defaults() Serve {
	return Serve{
		DataDir:       DefaultDataDir,
		HTTPAddr:      DefaultHTTPAddr,
		Mirrors:       []string{DefaultMirror},
		RsyncAddr:     DefaultRsyncAddr,
		TreeInterval:  time.Hour,
		TreeKeep:      3,
		TreeMaxAge:    DefaultTreeMaxAge,
		TreeIndexWait: DefaultTreeIndexWait,
		CleanGrace:    DefaultCleanGrace,
		DrainTimeout:  DefaultDrainTimeout,
	}
}

// TreeDir is where tree snapshots live.
func (s *Serve) TreeDir() string { return filepath.Join(s.DataDir, "tree") }

// DistfilesDir is where cached distfiles live.
func (s *Serve) DistfilesDir() string { return filepath.Join(s.DataDir, "distfiles") }

// ParseModuleFlag parses the command line's quick module "NAME=PATH": a
// read-only, listed, chrooted module.
func ParseModuleFlag(s string) (Module, error) {
	name, path, ok := strings.Cut(s, "=")
	if !ok || name == "" || path == "" {
		return Module{}, fmt.Errorf("rsync module %q: want NAME=PATH", s)
	}
	return Module{Name: name, Path: path, ReadOnly: true, UseChroot: true, List: true}, nil
}

// Resolve fills in the derived settings: with TreeUpstream and no Tree,
// Tree is the published snapshot DATA/tree/current; with a Tree and no
// rsync module nor rsyncd.conf, the tree is served as module
// gentoo-portage.
func (s *Serve) Resolve() error {
	if s.Store != "" && s.Store != "disk" && !s.RemoteStore() {
		return fmt.Errorf("config: store %q: want empty (the data directory) or s3://BUCKET[/PREFIX]", s.Store)
	}
	if s.LeaseTTL != 0 && s.LeaseTTL < time.Second {
		return fmt.Errorf("config: lease-ttl %v: want at least 1s (0: the default, 30s)", s.LeaseTTL)
	}
	if len(s.Peers) > 0 && (!s.RemoteStore() || s.AdvertiseURL == "") {
		return fmt.Errorf("config: peers need an S3 store and this node's advertise URL")
	}
	if s.LocalCache > 0 && !s.RemoteStore() {
		return fmt.Errorf("config: the local cache size is for an S3 store (the data directory is the cache otherwise)")
	}
	if s.RemoteStore() && (s.MaxCache > 0 || s.CleanInterval > 0) {
		return fmt.Errorf("config: the cache size cap and periodic cleaning work on the data directory, not on object storage: with store %s, expire objects with the bucket's lifecycle rules", s.Store)
	}
	if len(s.TreeUpstream) > 0 && s.Tree == "" {
		s.Tree = filepath.Join(s.TreeDir(), "current")
	}
	if s.Tree != "" && s.RsyncdConf == "" && len(s.RsyncModules) == 0 {
		s.RsyncModules = append(s.RsyncModules, Module{
			Name: DefaultModuleName, Path: s.Tree, Comment: "Gentoo ebuild repository",
			Exclude: TreeExcludes, ReadOnly: true, UseChroot: true, List: true,
		})
	}
	return nil
}

// LocalTree is the ebuild tree the cache tools (import, prefetch, clean)
// verify against: Tree when set, else the published snapshot
// DATA/tree/current when there is one, else "" (no tree).
func (s *Serve) LocalTree() string {
	if s.Tree != "" {
		return s.Tree
	}
	cur := filepath.Join(s.TreeDir(), "current")
	if fi, err := os.Stat(cur); err == nil && fi.IsDir() {
		return cur
	}
	return ""
}

// MergeModules returns base with the modules of over added; one of over
// replaces the module of base with its name.
func MergeModules(base, over []Module) []Module {
	out := append([]Module(nil), base...)
	for _, m := range over {
		replaced := false
		for i := range out {
			if out[i].Name == m.Name {
				out[i], replaced = m, true
			}
		}
		if !replaced {
			out = append(out, m)
		}
	}
	return out
}
