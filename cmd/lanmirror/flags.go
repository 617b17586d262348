package main

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/lanmirror/lanmirror/internal/config"
	"github.com/spf13/pflag"
)

// settingsFlags binds command-line flags to the fields of one config.Serve
// (vals, starting at config.Defaults()). Each flag is declared once, in one
// of the groups below, and commands pick the groups they need.
//
// The effective settings are built by settings(): the defaults, then the
// config file (--config, else /etc/lanmirror/lanmirror.toml when it
// exists), then every flag given on the command line copied over them (a
// field whose flag was not given keeps the lower layer's value), then
// Resolve.
type settingsFlags struct {
	fs    *pflag.FlagSet
	vals  config.Serve
	bound []boundFlag

	configFile string // --config
	// defaultConfig is read when --config is not given and it exists.
	defaultConfig string
}

// boundFlag is a flag and the index of the config.Serve field it sets.
type boundFlag struct {
	name  string
	field int
	// merge, when set, combines the flag's value with the lower layers'
	// instead of replacing it.
	merge func(dst *config.Serve)
}

func newSettingsFlags() *settingsFlags {
	return &settingsFlags{vals: config.Defaults(), defaultConfig: config.DefaultConfigFile}
}

// on sets the flag set the groups declare their flags in, and declares
// --config there.
func (sf *settingsFlags) on(fs *pflag.FlagSet) *settingsFlags {
	sf.fs = fs
	fs.StringVar(&sf.configFile, "config", "", "TOML config file (default "+config.DefaultConfigFile+" when it exists; flags given override it)")
	return sf
}

// fieldOf returns the index of the field of sf.vals at address p.
func (sf *settingsFlags) fieldOf(p any) int {
	want := reflect.ValueOf(p).Pointer()
	v := reflect.ValueOf(&sf.vals).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		if f.Addr().Pointer() == want && f.Addr().Type() == reflect.TypeOf(p) {
			return i
		}
	}
	panic(fmt.Sprintf("flag bound to %T outside config.Serve", p))
}

func (sf *settingsFlags) bind(name string, p any) {
	sf.bound = append(sf.bound, boundFlag{name: name, field: sf.fieldOf(p)})
}

func (sf *settingsFlags) String(p *string, name, usage string) {
	sf.fs.StringVar(p, name, *p, usage)
	sf.bind(name, p)
}

func (sf *settingsFlags) Strings(p *[]string, name, usage string) {
	sf.fs.StringArrayVar(p, name, *p, usage)
	sf.bind(name, p)
}

func (sf *settingsFlags) Int(p *int, name, usage string) {
	sf.fs.IntVar(p, name, *p, usage)
	sf.bind(name, p)
}

func (sf *settingsFlags) Bool(p *bool, name, usage string) {
	sf.fs.BoolVar(p, name, *p, usage)
	sf.bind(name, p)
}

func (sf *settingsFlags) Duration(p *time.Duration, name, usage string) {
	sf.fs.DurationVar(p, name, *p, usage)
	sf.bind(name, p)
}

// Var binds a flag with its own parser (v) writing to the field at p.
func (sf *settingsFlags) Var(v pflag.Value, p any, name, usage string) {
	sf.fs.Var(v, name, usage)
	sf.bind(name, p)
}

// apply copies the value of every flag given on the command line onto dst.
func (sf *settingsFlags) apply(dst *config.Serve) {
	src := reflect.ValueOf(&sf.vals).Elem()
	d := reflect.ValueOf(dst).Elem()
	for _, b := range sf.bound {
		switch {
		case !sf.fs.Changed(b.name):
		case b.merge != nil:
			b.merge(dst)
		default:
			d.Field(b.field).Set(src.Field(b.field))
		}
	}
}

// settings returns the effective settings: defaults, then the config
// file, then the flags given, then the derived values
// (config.Serve.Resolve).
func (sf *settingsFlags) settings() (*config.Serve, error) {
	cfg := config.Defaults()
	if file := sf.file(); file != "" {
		if err := config.LoadFile(file, &cfg); err != nil {
			return nil, err
		}
	}
	sf.apply(&cfg)
	if err := cfg.Resolve(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// file is the config file to read: --config, else the default file when
// it exists, else "" (--config ” reads none).
func (sf *settingsFlags) file() string {
	if sf.fs.Changed("config") {
		return sf.configFile
	}
	if sf.defaultConfig != "" {
		if _, err := os.Stat(sf.defaultConfig); err == nil {
			return sf.defaultConfig
		}
	}
	return ""
}

// The flag groups. Every setting of config.Serve has its flag in exactly
// one group; add a new setting's flag to the group it belongs to.

// storeFlags: where the state lives.
func (sf *settingsFlags) storeFlags() {
	sf.String(&sf.vals.DataDir, "data", "directory where all state lives (distfiles cache below it)")
}

// treeFlags: the local ebuild repository.
func (sf *settingsFlags) treeFlags() {
	sf.String(&sf.vals.Tree, "tree", "local ebuild repository whose Manifests verify distfiles (default: DATA/tree/current when lanmirror mirrors one); "+
		"serve also serves it as rsync module gentoo-portage when no module is configured")
}

// mirrorFlags: the upstream distfiles mirrors and how they are reached.
func (sf *settingsFlags) mirrorFlags() {
	sf.Strings(&sf.vals.Mirrors, "mirror", "upstream distfiles mirror URL, repeatable, tried in order")
	sf.String(&sf.vals.UpstreamProxy, "upstream-proxy", "HTTP proxy (http://host:port) for the downloads from mirrors, origins and the upstream binhost; empty: direct")
}

// cacheLimitFlags: the size cap of the distfiles cache.
func (sf *settingsFlags) cacheLimitFlags() {
	sf.Var(sizeValue{&sf.vals.MaxCache}, &sf.vals.MaxCache, "max-cache", "distfiles cache size cap (e.g. 200G); empty: no cap")
}

// httpFlags: the HTTP side (proxy, mirror, aliases, binary packages).
func (sf *settingsFlags) httpFlags() {
	v := &sf.vals
	sf.String(&v.HTTPAddr, "http", "HTTP listen address (proxy, mirror, aliases); empty disables")
	sf.Strings(&v.Allow, "allow", "client allow rule: CIDR or 10.1.2.* wildcard, repeatable (default: loopback and private ranges)")
	sf.Var(aliasValue{&v.Aliases}, &v.Aliases, "alias", "serve local DIR read-only under /NAME/ (DIR:NAME), repeatable")
	sf.Strings(&v.ProxyAllowHosts, "proxy-allow-host", "extra host the forward proxy may reach, repeatable")
	sf.String(&v.LogFile, "log", "access log file (default: standard error)")
	sf.String(&v.Binpkgs, "binpkgs", "PKGDIR served under /binpkgs/")
	sf.String(&v.BinhostUpstream, "binhost-upstream", "upstream binhost URL cached under /binpkgs/")
	sf.Duration(&v.TreeIndexWait, "tree-index-wait", "how long a distfile request waits for the tree's DIST index being built before it gets 503 with Retry-After")
}

// verifyCacheFlags: the daemon's re-verification of the cache.
func (sf *settingsFlags) verifyCacheFlags() {
	v := &sf.vals
	sf.Bool(&v.VerifyCache, "verify-cache", "re-hash the cached distfiles against the tree's Manifests in the background at start; mismatches go to DATA/quarantine")
	sf.Duration(&v.VerifyCacheInterval, "verify-cache-interval", "repeat the --verify-cache pass this often (e.g. 168h); 0: only at start")
}

// rsyncFlags: the rsync daemon.
func (sf *settingsFlags) rsyncFlags() {
	v := &sf.vals
	sf.String(&v.RsyncAddr, "rsync", "rsync daemon listen address; empty disables")
	sf.String(&v.RsyncdConf, "rsyncd-conf", "classic rsyncd.conf with the rsync modules")
	sf.Var(moduleValue{&v.RsyncModules}, &v.RsyncModules, "rsync-module", "rsync module NAME=PATH, repeatable (replaces the config file's module of that name)")
	// Modules from the command line join the config file's.
	sf.bound[len(sf.bound)-1].merge = func(dst *config.Serve) {
		dst.RsyncModules = config.MergeModules(dst.RsyncModules, v.RsyncModules)
	}
}

// treeMirrorFlags: mirroring the tree from upstream.
func (sf *settingsFlags) treeMirrorFlags() {
	v := &sf.vals
	sf.Strings(&v.TreeUpstream, "tree-upstream", "mirror the tree from this rsync URL into atomic snapshots below --data (e.g. rsync://rsync.gentoo.org/gentoo-portage/); repeatable: tried in order, the next after a failure")
	sf.Duration(&v.TreeInterval, "tree-interval", "how often to sync the tree from --tree-upstream")
	sf.Int(&v.TreeKeep, "tree-keep", "how many tree snapshots to keep")
}

// treeVerifyFlags: verifying the mirrored tree before it is published
// (serve and sync).
func (sf *settingsFlags) treeVerifyFlags() {
	v := &sf.vals
	sf.String(&v.TreeOpenPGPKey, "tree-openpgp-key", "OpenPGP public key file (armored or binary) that signs the tree, e.g. /usr/share/openpgp-keys/gentoo-release.asc: "+
		"each pulled tree is verified against its signed Manifests (GLEP 74) and published only when it passes; empty: the tree is NOT authenticated")
	sf.Duration(&v.TreeMaxAge, "tree-max-age", "refuse a pulled tree whose signed TIMESTAMP is older than this (like Portage's sync-rsync-verify-max-age); 0: no limit")
}

// cleanFlags: the daemon's periodic cleaning.
func (sf *settingsFlags) cleanFlags() {
	v := &sf.vals
	sf.Duration(&v.CleanInterval, "clean-interval", "how often to clean the cache (e.g. 24h); 0 disables")
	sf.Duration(&v.CleanGrace, "clean-grace", "periodic cleaning keeps distfiles the tree no longer references this long after their last use")
}

// objectStoreFlags: cached objects on S3-compatible object storage
// (several nodes sharing one bucket).
func (sf *settingsFlags) objectStoreFlags() {
	v := &sf.vals
	sf.String(&v.Store, "store", "where cached objects live: empty for --data, or s3://BUCKET[/PREFIX] (S3-compatible object storage; credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws/credentials)")
	sf.String(&v.S3Endpoint, "s3-endpoint", "S3 server URL for --store s3://... (e.g. http://rgw.example:7480); empty: AWS")
	sf.String(&v.S3Region, "s3-region", "S3 region of the bucket (default: $AWS_REGION)")
	sf.Duration(&v.LeaseTTL, "lease-ttl", "with --store s3://: how long a node's claim to download a file lasts unless renewed (0: 30s)")
	sf.String(&v.AdvertiseURL, "advertise-url", "with --store s3://: this node's HTTP base URL, written in its download leases")
	sf.Strings(&v.Peers, "peers", "with --store s3://: another node's base URL (its --advertise-url), repeatable: a file that node is downloading is streamed from it instead of waiting for the bucket")
	sf.Var(sizeValue{&v.LocalCache}, &v.LocalCache, "s3-local-cache", "with --store s3://: keep local copies of recently served distfiles below --data, up to this size (e.g. 50G); empty: none")
}

// clientLimitFlags: bounds on slow and hostile clients.
func (sf *settingsFlags) clientLimitFlags() {
	v := &sf.vals
	sf.Int(&v.MaxConnsPerClient, "max-conns-per-client", "connections one client address may hold at once, on the HTTP side and on the rsync daemon each (HTTP answers 503 beyond it, rsync @ERROR); 0: no limit")
	sf.Duration(&v.HTTPHeaderTimeout, "http-header-timeout", "disconnect an HTTP client that has not sent its request headers within this time (slowloris); 0: 20s")
	sf.Duration(&v.HTTPWriteTimeout, "http-write-timeout", "disconnect an HTTP client that accepts no data of an answer for this long; 0: 2m")
	sf.Duration(&v.RsyncHandshakeTimeout, "rsync-handshake-timeout", "disconnect an rsync client that has not completed the handshake (greeting to arguments), or that keeps the session setup waiting up to the end of the file list, within this time; 0: 60s")
}

// processFlags: the daemon's user and its stop.
func (sf *settingsFlags) processFlags() {
	v := &sf.vals
	sf.String(&v.User, "user", "run as this user (name or uid) once every port is bound; its group unless the rsync modules name a gid")
	sf.Bool(&v.AllowRoot, "allow-root", "keep running as root (without it lanmirror started as root needs --user)")
	sf.Duration(&v.DrainTimeout, "drain-timeout", "on SIGTERM, how long transfers in progress may finish before lanmirror exits")
}

// allServeFlags declares every serve setting (serve, check-config,
// client-config).
func (sf *settingsFlags) allServeFlags() {
	sf.storeFlags()
	sf.processFlags()
	sf.httpFlags()
	sf.mirrorFlags()
	sf.rsyncFlags()
	sf.treeFlags()
	sf.treeMirrorFlags()
	sf.treeVerifyFlags()
	sf.cacheLimitFlags()
	sf.cleanFlags()
	sf.objectStoreFlags()
	sf.clientLimitFlags()
	sf.verifyCacheFlags()
}

// serveFlags binds every serve setting to a flag of fs; finish, called
// after parsing, fills cfg with the effective settings.
func serveFlags(fs *pflag.FlagSet, cfg *config.Serve) (finish func() error) {
	sf := newSettingsFlags().on(fs)
	sf.allServeFlags()
	return func() error {
		s, err := sf.settings()
		if err != nil {
			return err
		}
		*cfg = *s
		return nil
	}
}

// sizeValue parses a size with a unit (200G) into bytes.
type sizeValue struct{ p *int64 }

func (v sizeValue) Set(s string) error {
	if s == "" {
		*v.p = 0
		return nil
	}
	n, err := config.ParseSize(s)
	if err != nil {
		return err
	}
	*v.p = n
	return nil
}

func (v sizeValue) String() string {
	if v.p == nil || *v.p == 0 {
		return ""
	}
	return fmt.Sprint(*v.p)
}

func (sizeValue) Type() string { return "size" }

// aliasValue appends http-replicator style DIR:NAME aliases.
type aliasValue struct{ p *[]config.Alias }

func (v aliasValue) Set(s string) error {
	a, err := config.ParseAlias(s)
	if err != nil {
		return err
	}
	*v.p = append(*v.p, a)
	return nil
}

func (v aliasValue) String() string {
	if v.p == nil {
		return ""
	}
	var s []string
	for _, a := range *v.p {
		s = append(s, a.Dir+":"+a.Name)
	}
	return strings.Join(s, ",")
}

func (aliasValue) Type() string { return "DIR:NAME" }

// moduleValue appends NAME=PATH rsync modules.
type moduleValue struct{ p *[]config.Module }

func (v moduleValue) Set(s string) error {
	m, err := config.ParseModuleFlag(s)
	if err != nil {
		return err
	}
	*v.p = append(*v.p, m)
	return nil
}

func (v moduleValue) String() string {
	if v.p == nil {
		return ""
	}
	var s []string
	for _, m := range *v.p {
		s = append(s, m.Name+"="+m.Path)
	}
	return strings.Join(s, ",")
}

func (moduleValue) Type() string { return "NAME=PATH" }
