// Package testtree writes deterministic, Gentoo-like ebuild trees for tests
// and benchmarks: categories and packages with ebuilds, Manifests and
// files/ directories, metadata/md5-cache, profiles, eclasses, plus the odd
// cases a tree server must get right (symlinks inside and outside the tree,
// varied modes, sub-second mtimes, empty files, a large file, names with
// spaces and UTF-8). The same Options always produce the same tree, and
// Mutate changes it the same way for the same seed.
package testtree

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// DefaultFiles is the number of regular files Generate writes when
// Options.Files is zero.
const DefaultFiles = 3000

// DefaultBigFile is the size of the one large file when Options.BigFile is zero.
const DefaultBigFile = 1536 * 1024

// baseTime is the reference time of every generated mtime (2024-01-01 UTC).
var baseTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Unix()

// Well-known paths (slash-separated, relative to the tree root) that every
// generated tree contains.
const (
	// TimestampFile is what emerge --sync probes first.
	TimestampFile = "metadata/timestamp.chk"
	// BigFile is the one file larger than 1 MiB.
	BigFile = "metadata/pkg_desc_index"
	// OutsideLink is a relative symlink whose target climbs out of the tree.
	OutsideLink = "metadata/outside-link"
	// AbsoluteLink is a symlink with an absolute target.
	AbsoluteLink = "metadata/absolute-link"
	// SpacesFile has spaces in its name.
	SpacesFile = "profiles/desc/name with spaces.desc"
	// UTF8File has a non-ASCII UTF-8 name.
	UTF8File = "metadata/news/2024-01-15-café-crème/2024-01-15-café-crème.en.txt"
	// PrivateFile has mode 0600.
	PrivateFile = "metadata/private-notes.txt"
)

// PortageExcluded lists the top-level directories that Portage's default
// rsync options exclude (--exclude=/distfiles and so on). Generate writes
// them when Options.PortageExcluded is set.
var PortageExcluded = []string{"distfiles", "local", "packages", ".git"}

// Options say what tree Generate writes.
type Options struct {
	// Seed makes the tree: the same seed, the same tree.
	Seed uint64
	// Files is about how many regular files to write (the tree may hold a
	// few more); 0 means DefaultFiles.
	Files int
	// BigFile is the size of the one large file; 0 means DefaultBigFile,
	// negative means none.
	BigFile int64
	// PortageExcluded also writes distfiles/, local/, packages/ and .git/,
	// which Portage's rsync options exclude.
	PortageExcluded bool
}

// Tree describes a generated tree.
type Tree struct {
	// Root is the directory the tree was written to.
	Root string
	// Files, Dirs and Symlinks count the entries below Root (Root itself not
	// counted); Bytes is the total size of the regular files.
	Files, Dirs, Symlinks int
	Bytes                 int64
}

// Generate writes a tree into dir (created if missing; it should be empty)
// and returns its description.
func Generate(dir string, opts Options) (*Tree, error) {
	if opts.Files <= 0 {
		opts.Files = DefaultFiles
	}
	if opts.BigFile == 0 {
		opts.BigFile = DefaultBigFile
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("testtree: create root: %w", err)
	}
	g := &gen{root: dir, rng: newRand(opts.Seed, 1), dirModes: map[string]os.FileMode{}}
	if err := g.write(opts); err != nil {
		return nil, err
	}
	if err := g.finishDirs(); err != nil {
		return nil, err
	}
	t := &Tree{Root: dir}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		switch {
		case d.Type()&os.ModeSymlink != 0:
			t.Symlinks++
		case d.IsDir():
			t.Dirs++
		case d.Type().IsRegular():
			t.Files++
			info, err := d.Info()
			if err != nil {
				return err
			}
			t.Bytes += info.Size()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("testtree: count: %w", err)
	}
	return t, nil
}

// gen holds the state of one Generate call.
type gen struct {
	root     string
	rng      *rnd
	files    int
	dirs     []string // every directory created (relative), for finishDirs
	dirModes map[string]os.FileMode
}

// write lays out the whole tree.
func (g *gen) write(opts Options) error {
	if err := g.writeFixed(opts); err != nil {
		return err
	}
	cats := categoryNames(opts.Files)
	// Packages go round-robin over the categories until the file budget is spent.
	for i := 0; g.files < opts.Files; i++ {
		cat := cats[i%len(cats)]
		pkg := fmt.Sprintf("%s-%d", pkgWords[g.rng.intn(len(pkgWords))], i)
		if err := g.writePackage(cat, pkg); err != nil {
			return err
		}
	}
	var catList strings.Builder
	for _, c := range cats {
		catList.WriteString(c + "\n")
	}
	return g.file("profiles/categories", []byte(catList.String()), 0o644)
}

// writeFixed writes the special entries every tree has.
func (g *gen) writeFixed(opts Options) error {
	ts := time.Unix(baseTime+int64(g.rng.intn(86400*300)), 0).UTC()
	steps := []func() error{
		func() error {
			return g.file(TimestampFile, []byte(ts.Format("Mon, 02 Jan 2006 15:04:05 +0000")+"\n"), 0o644)
		},
		func() error {
			return g.file("metadata/timestamp.x", []byte(fmt.Sprintf("%d %s\n", ts.Unix(), ts.Format(time.UnixDate))), 0o644)
		},
		func() error {
			return g.file("metadata/layout.conf", []byte("repo-name = gentoo\nmasters =\nthin-manifests = true\nsign-manifests = false\n"), 0o644)
		},
		func() error { return g.file("profiles/repo_name", []byte("gentoo\n"), 0o644) },
		func() error { return g.file(SpacesFile, g.text(300, 900), 0o644) },
		func() error { return g.file(UTF8File, g.text(400, 1200), 0o644) },
		func() error { return g.file("metadata/news/ünïcødé ñame.txt", g.text(100, 300), 0o644) },
		func() error { return g.file(PrivateFile, g.text(50, 200), 0o600) },
		func() error { return g.file("metadata/empty-file", nil, 0o644) },
		func() error {
			return g.file("scripts/bump.sh", append([]byte("#!/bin/sh\n"), g.text(200, 800)...), 0o755)
		},
		func() error { return g.file("scripts/.keep", nil, 0o644) },
		// Names whose order differs between the pre-29 sort (plain bytes)
		// and the 29+ sort (files before subdirectories): a file "eclass.txt"
		// next to the directory "eclass", and "md5-cache.txt".
		func() error { return g.file("eclass.txt", g.text(100, 200), 0o644) },
		func() error { return g.file("metadata/md5-cache.txt", g.text(100, 200), 0o644) },
		func() error { return g.file("metadata/md5-cache-x/entry", g.text(100, 200), 0o644) },
		func() error { return g.symlink(OutsideLink, "../../outside-of-the-tree/file") },
		func() error { return g.symlink(AbsoluteLink, "/usr/share/portage/config/repos.conf") },
		func() error { return g.dirMode("metadata/restricted", 0o750) },
		func() error { return g.file("metadata/restricted/data", g.text(100, 500), 0o644) },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	if opts.BigFile > 0 {
		if err := g.file(BigFile, g.bigContent(opts.BigFile), 0o644); err != nil {
			return err
		}
	}
	// eclasses, one linked under another name (safe, it climbs up and back).
	for i := 0; i < 12; i++ {
		if err := g.file(fmt.Sprintf("eclass/%s.eclass", eclassWords[i%len(eclassWords)]), g.text(1500, 9000), 0o644); err != nil {
			return err
		}
	}
	if err := g.symlink("eclass/alias.eclass", "../eclass/"+eclassWords[0]+".eclass"); err != nil {
		return err
	}
	// profiles: deep nesting, and a directory symlink.
	deep := "profiles/default/linux/amd64/23.0"
	for _, sub := range []string{"", "/desktop", "/desktop/gnome", "/desktop/gnome/systemd", "/no-multilib", "/split-usr"} {
		for _, f := range []string{"parent", "make.defaults", "package.use"} {
			if err := g.file(deep+sub+"/"+f, g.text(20, 700), 0o644); err != nil {
				return err
			}
		}
	}
	if err := g.file(deep+"/desktop/gnome/systemd/eapi", []byte("5\n"), 0o644); err != nil {
		return err
	}
	if err := g.symlink("profiles/default/linux/amd64/current", "23.0"); err != nil {
		return err
	}
	if err := g.symlink("profiles/default/linux/amd64/broken", "does-not-exist"); err != nil {
		return err
	}
	for _, f := range []string{"arch.list", "license_groups", "use.desc", "package.mask", "thirdpartymirrors"} {
		if err := g.file("profiles/"+f, g.text(200, 6000), 0o644); err != nil {
			return err
		}
	}
	for i := 0; i < 20; i++ {
		if err := g.file(fmt.Sprintf("licenses/LICENSE-%d.%d", i/3, i%3), g.text(500, 4000), 0o644); err != nil {
			return err
		}
	}
	if opts.PortageExcluded {
		for _, d := range PortageExcluded {
			if err := g.file(d+"/should-not-be-synced", g.text(10, 100), 0o644); err != nil {
				return err
			}
		}
		if err := g.file("distfiles/foo-1.0.tar.gz", g.random(3000), 0o644); err != nil {
			return err
		}
		if err := g.file("packages/All/foo-1.0.gpkg.tar", g.random(2000), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// writePackage writes one package directory and its md5-cache entries.
func (g *gen) writePackage(cat, pkg string) error {
	dir := cat + "/" + pkg
	nver := 1 + g.rng.intn(3)
	var manifest strings.Builder
	for v := 0; v < nver; v++ {
		pv := fmt.Sprintf("%s-%d.%d", pkg, 1+v, g.rng.intn(10))
		if g.rng.intn(4) == 0 {
			pv += fmt.Sprintf("-r%d", 1+g.rng.intn(3))
		}
		if err := g.file(dir+"/"+pv+".ebuild", g.ebuild(cat, pv), 0o644); err != nil {
			return err
		}
		if err := g.file("metadata/md5-cache/"+cat+"/"+pv, g.text(500, 1500), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(&manifest, "DIST %s.tar.xz %d BLAKE2B %s SHA512 %s\n", pv, 1000+g.rng.intn(1<<24), g.hex(128), g.hex(128))
	}
	if err := g.file(dir+"/Manifest", []byte(manifest.String()), 0o644); err != nil {
		return err
	}
	if err := g.file(dir+"/metadata.xml", g.metadataXML(pkg), 0o644); err != nil {
		return err
	}
	switch g.rng.intn(8) {
	case 0, 1: // a few patches
		for i := 0; i < 1+g.rng.intn(3); i++ {
			if err := g.file(fmt.Sprintf("%s/files/%s-fix-%d.patch", dir, pkg, i), g.text(200, 12000), 0o644); err != nil {
				return err
			}
		}
	case 2: // init scripts (executable) and a nested config dir
		if err := g.file(dir+"/files/"+pkg+".initd", append([]byte("#!/sbin/openrc-run\n"), g.text(200, 1500)...), 0o755); err != nil {
			return err
		}
		if err := g.file(dir+"/files/conf/"+pkg+".confd", g.text(50, 400), 0o644); err != nil {
			return err
		}
	case 3: // an empty file and a link to a patch
		if err := g.file(dir+"/files/"+pkg+"-1.patch", g.text(300, 3000), 0o644); err != nil {
			return err
		}
		if err := g.file(dir+"/files/.keep", nil, 0o644); err != nil {
			return err
		}
		if err := g.symlink(dir+"/files/latest.patch", pkg+"-1.patch"); err != nil {
			return err
		}
	}
	return nil
}

// file writes one regular file with its mode and a generated mtime.
func (g *gen) file(rel string, data []byte, mode os.FileMode) error {
	p := filepath.Join(g.root, filepath.FromSlash(rel))
	if err := g.mkdirs(filepath.Dir(rel)); err != nil {
		return err
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		return fmt.Errorf("testtree: write %s: %w", rel, err)
	}
	if err := os.Chmod(p, mode); err != nil { // umask-proof
		return fmt.Errorf("testtree: chmod %s: %w", rel, err)
	}
	mt := g.mtime()
	if err := os.Chtimes(p, mt, mt); err != nil {
		return fmt.Errorf("testtree: chtimes %s: %w", rel, err)
	}
	g.files++
	return nil
}

// symlink creates a symlink (its own mtime is left as it is).
func (g *gen) symlink(rel, target string) error {
	if err := g.mkdirs(filepath.Dir(rel)); err != nil {
		return err
	}
	if err := os.Symlink(target, filepath.Join(g.root, filepath.FromSlash(rel))); err != nil {
		return fmt.Errorf("testtree: symlink %s: %w", rel, err)
	}
	return nil
}

// dirMode creates a directory that keeps a mode other than 0755.
func (g *gen) dirMode(rel string, mode os.FileMode) error {
	if err := g.mkdirs(rel); err != nil {
		return err
	}
	g.dirModes[rel] = mode
	return nil
}

// mkdirs creates rel and its parents, remembering each new one.
func (g *gen) mkdirs(rel string) error {
	rel = filepath.ToSlash(rel)
	if rel == "." || rel == "" {
		return nil
	}
	p := filepath.Join(g.root, filepath.FromSlash(rel))
	if _, err := os.Lstat(p); err == nil {
		return nil
	}
	if err := g.mkdirs(filepath.Dir(rel)); err != nil {
		return err
	}
	if err := os.Mkdir(p, 0o755); err != nil {
		return fmt.Errorf("testtree: mkdir %s: %w", rel, err)
	}
	g.dirs = append(g.dirs, rel)
	return nil
}

// finishDirs sets directory modes and mtimes, deepest first, once every
// entry exists (creating entries changes the parent's mtime).
func (g *gen) finishDirs() error {
	dirs := append([]string(nil), g.dirs...)
	sort.Slice(dirs, func(i, j int) bool { return dirs[i] > dirs[j] })
	dirs = append(dirs, ".")
	for _, rel := range dirs {
		p := filepath.Join(g.root, filepath.FromSlash(rel))
		mode := os.FileMode(0o755)
		if m, ok := g.dirModes[rel]; ok {
			mode = m
		}
		if err := os.Chmod(p, mode); err != nil {
			return fmt.Errorf("testtree: chmod %s: %w", rel, err)
		}
		mt := g.mtime()
		if err := os.Chtimes(p, mt, mt); err != nil {
			return fmt.Errorf("testtree: chtimes %s: %w", rel, err)
		}
	}
	return nil
}

// mtime picks a time in 2024; about half have a sub-second part.
func (g *gen) mtime() time.Time {
	sec := baseTime + int64(g.rng.intn(86400*365))
	var nsec int64
	if g.rng.intn(2) == 0 {
		nsec = int64(1 + g.rng.intn(999_999_999))
	}
	return time.Unix(sec, nsec)
}
