package binpkg

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/lanmirror/lanmirror/internal/gentoo"
)

// indexer decides what answers a request for Packages or Packages.gz: the
// PKGDIR's own index when it matches the package files on disk, otherwise an
// index generated from the files, kept in memory until the files change.
type indexer struct {
	ctx  context.Context // cancelled when the handler closes
	root *os.Root
	log  *slog.Logger
	// rescan is the shortest time between two scans of the directory.
	rescan time.Duration
	now    func() time.Time

	mu       sync.Mutex
	state    dirState
	scanned  time.Time
	scanErr  error
	disk     diskIndex          // the on-disk Packages, as last parsed
	diskGz   *memIndex          // gzip of the on-disk Packages, when it has no fresh Packages.gz
	gen      *memIndex          // the last generated index
	entries  map[string]cached  // generated entries by path
	lastTime int64              // TIMESTAMP of the last generated index
	bad      map[string]pkgFile // packages that failed, logged once per version
}

// cached is a generated Packages entry and the file version it describes.
type cached struct {
	f pkgFile
	e gentoo.PackageFields
}

// diskIndex is the PKGDIR's own Packages file as last parsed.
type diskIndex struct {
	size      int64
	mtime     time.Time
	files     map[string]pkgFile // the package files it lists
	timestamp string             // its header TIMESTAMP
	header    gentoo.PackageFields
	// The last freshness decision and the directory state it was made for.
	freshFor [sha256.Size]byte
	fresh    bool
	decided  bool
	entries  map[string]gentoo.PackageFields
	err      error
}

// memIndex is an index held in memory, plain and gzipped.
type memIndex struct {
	sig     [sha256.Size]byte
	modTime time.Time
	plain   []byte
	gz      []byte
}

// answer is what to serve for Packages or Packages.gz: a file of the PKGDIR
// (file non-empty) or bytes in memory.
type answer struct {
	file    string
	body    []byte
	modTime time.Time
}

func newIndexer(ctx context.Context, root *os.Root, log *slog.Logger) *indexer {
	return &indexer{
		ctx: ctx, root: root, log: log, rescan: time.Second, now: time.Now,
		entries: map[string]cached{}, bad: map[string]pkgFile{},
	}
}

// index returns what to serve for Packages (gz false) or Packages.gz.
func (x *indexer) index(gz bool) (answer, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.scanned.IsZero() || x.now().Sub(x.scanned) >= x.rescan {
		x.state, x.scanErr = scanDir(x.root)
		x.scanned = x.now()
	}
	if x.scanErr != nil {
		return answer{}, x.scanErr
	}
	if a, ok := x.fromDisk(gz); ok {
		return a, nil
	}
	if x.gen == nil || x.gen.sig != x.state.sig {
		if err := x.generate(); err != nil {
			return answer{}, err
		}
	}
	if gz {
		return answer{body: x.gen.gz, modTime: x.gen.modTime}, nil
	}
	return answer{body: x.gen.plain, modTime: x.gen.modTime}, nil
}

// fromDisk answers from the PKGDIR's own Packages when it lists exactly the
// package files on disk, with their sizes and mtimes.
func (x *indexer) fromDisk(gz bool) (answer, bool) {
	st, err := x.root.Stat("Packages")
	if err != nil || !st.Mode().IsRegular() {
		x.disk = diskIndex{}
		return answer{}, false
	}
	if st.Size() != x.disk.size || !st.ModTime().Equal(x.disk.mtime) {
		x.disk = x.parseDisk(st)
		x.diskGz = nil
	}
	if x.disk.err != nil || !x.diskFresh() {
		return answer{}, false
	}
	if x.lastTime != 0 {
		// Once an index was generated, clients may hold its TIMESTAMP: the
		// on-disk one is only served again when it is newer.
		if ts, err := strconv.ParseInt(x.disk.timestamp, 10, 64); err != nil || ts <= x.lastTime {
			return answer{}, false
		}
	}
	if !gz {
		return answer{file: "Packages", modTime: st.ModTime()}, true
	}
	if gst, err := x.root.Stat("Packages.gz"); err == nil && gst.Mode().IsRegular() && !gst.ModTime().Before(st.ModTime()) {
		return answer{file: "Packages.gz", modTime: gst.ModTime()}, true
	}
	if x.diskGz == nil {
		plain, err := x.root.ReadFile("Packages")
		if err != nil || int64(len(plain)) != st.Size() {
			return answer{}, false
		}
		x.diskGz = &memIndex{gz: gzipBytes(plain, st.ModTime())}
	}
	return answer{body: x.diskGz.gz, modTime: st.ModTime()}, true
}

// parseDisk reads the on-disk Packages and digests the files it lists.
func (x *indexer) parseDisk(st fs.FileInfo) diskIndex {
	d := diskIndex{size: st.Size(), mtime: st.ModTime(), entries: map[string]gentoo.PackageFields{}, files: map[string]pkgFile{}}
	f, err := x.root.Open("Packages")
	if err != nil {
		d.err = err
		return d
	}
	defer f.Close()
	ix, err := gentoo.ReadPackages(f)
	if err != nil {
		d.err = err
		x.log.Warn("binpkg: unreadable Packages in PKGDIR, generating one", "err", err)
		return d
	}
	if v := ix.Header[gentoo.PkgKeyVersion]; v != gentoo.PackagesVersion {
		d.err = fmt.Errorf("index VERSION %q", v)
		return d
	}
	d.timestamp = ix.Header[gentoo.PkgKeyTimestamp]
	d.header = ix.Header
	for _, e := range ix.Packages {
		p := e[gentoo.PkgKeyPath]
		if p == "" {
			p = e[gentoo.PkgKeyCPV] + extTbz2 // Portage's default
		}
		size, err1 := strconv.ParseInt(e[gentoo.PkgKeySize], 10, 64)
		mt, err2 := strconv.ParseInt(e[gentoo.PkgKeyMTime], 10, 64)
		if err1 != nil || err2 != nil {
			d.err = fmt.Errorf("entry %s lacks SIZE or MTIME", e[gentoo.PkgKeyCPV])
			return d
		}
		d.files[p] = pkgFile{Path: p, Size: size, MTime: mt}
		d.entries[p] = e
	}
	return d
}

// diskFresh reports whether the on-disk index lists every valid package
// file on disk with its size and mtime, and nothing else. Files it does not
// list are read: if they are not valid packages (Portage leaves those out
// too), the index is still fresh.
func (x *indexer) diskFresh() bool {
	d := &x.disk
	if d.decided && d.freshFor == x.state.sig {
		return d.fresh
	}
	d.decided, d.freshFor, d.fresh = true, x.state.sig, false
	listed := 0
	for _, f := range x.state.files {
		if x.ctx.Err() != nil {
			d.decided = false
			return false
		}
		if g, ok := d.files[f.Path]; ok && g == f {
			listed++
			continue
		}
		if x.entry(f) != nil {
			return false // a valid package the index does not know
		}
	}
	d.fresh = listed == len(d.files)
	return d.fresh
}

// generate builds the index from the package files, reusing entries already
// generated or listed in the on-disk Packages for unchanged files. The
// header keeps what a (stale) on-disk index says of the build host (ARCH,
// CHOST, USE_EXPAND..., inherited by entries that lack them, as Portage
// does).
func (x *indexer) generate() error {
	ix := &gentoo.PackagesIndex{Header: gentoo.PackageFields{}}
	if x.disk.err == nil {
		for k, v := range x.disk.header {
			ix.Header[k] = v
		}
	}
	keep := make(map[string]cached, len(x.state.files))
	for _, f := range x.state.files {
		if err := x.ctx.Err(); err != nil {
			return fmt.Errorf("generate Packages: %w", err)
		}
		e := x.entry(f)
		if e == nil {
			continue
		}
		keep[f.Path] = cached{f: f, e: e}
		ix.Packages = append(ix.Packages, e)
	}
	x.entries = keep
	ix.Sort()
	t := x.now().Unix()
	if t <= x.lastTime {
		t = x.lastTime + 1
	}
	if ts, err := strconv.ParseInt(x.disk.timestamp, 10, 64); err == nil && t <= ts {
		t = ts + 1
	}
	x.lastTime = t
	ix.Stamp(time.Unix(t, 0))
	var buf bytes.Buffer
	if _, err := ix.WriteTo(&buf); err != nil {
		return fmt.Errorf("generate Packages: %w", err)
	}
	mod := time.Unix(t, 0)
	x.gen = &memIndex{sig: x.state.sig, modTime: mod, plain: buf.Bytes(), gz: gzipBytes(buf.Bytes(), mod)}
	x.log.Info("binpkg: generated Packages index", "packages", len(ix.Packages), "bytes", buf.Len())
	return nil
}

// entry returns the Packages entry of f, or nil when f is not a valid
// package (logged once per file version).
func (x *indexer) entry(f pkgFile) gentoo.PackageFields {
	if c, ok := x.entries[f.Path]; ok && c.f == f {
		return c.e
	}
	if e, ok := x.disk.entries[f.Path]; ok && x.disk.err == nil &&
		e[gentoo.PkgKeySize] == strconv.FormatInt(f.Size, 10) &&
		e[gentoo.PkgKeyMTime] == strconv.FormatInt(f.MTime, 10) &&
		e[gentoo.PkgKeyMD5] != "" && e[gentoo.PkgKeySHA1] != "" {
		e = clone(e)
		e[gentoo.PkgKeyPath] = f.Path
		return e
	}
	if b, ok := x.bad[f.Path]; ok && b == f {
		return nil
	}
	e, err := entryFor(x.ctx, x.root, f)
	if err != nil && x.ctx.Err() != nil {
		return nil // closing: not the package's fault
	}
	if err != nil {
		x.bad[f.Path] = f
		x.log.Warn("binpkg: invalid package left out of the index", "path", f.Path, "err", err)
		return nil
	}
	delete(x.bad, f.Path)
	x.entries[f.Path] = cached{f: f, e: e}
	return e
}

func clone(e gentoo.PackageFields) gentoo.PackageFields {
	c := make(gentoo.PackageFields, len(e))
	for k, v := range e {
		c[k] = v
	}
	return c
}

// gzipBytes compresses b with the given modification time in the header.
func gzipBytes(b []byte, mod time.Time) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.ModTime = mod
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}
