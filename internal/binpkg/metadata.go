package binpkg

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/lanmirror/lanmirror/internal/gentoo"
)

// Package file name extensions Portage recognises in a PKGDIR.
const (
	extTbz2 = ".tbz2"     // xpak, classic layout cat/pf.tbz2 or All/pf.tbz2
	extXpak = ".xpak"     // xpak, multi-instance cat/pn/pf-N.xpak
	extGpkg = ".gpkg.tar" // gpkg, cat/pf.gpkg.tar or cat/pn/pf-N.gpkg.tar
)

// packageExt returns the package extension of name, or "".
func packageExt(name string) string {
	for _, e := range []string{extGpkg, extTbz2, extXpak} {
		if strings.HasSuffix(name, e) && len(name) > len(e) {
			return e
		}
	}
	return ""
}

// indexKeys maps the metadata keys copied into a Packages entry to their
// name in the index (Portage's bintree keys; DESCRIPTION and repository are
// written as DESC and REPO).
var indexKeys = map[string]string{
	"BDEPEND": "BDEPEND", "BUILD_ID": "BUILD_ID", "BUILD_TIME": "BUILD_TIME",
	"CHOST": "CHOST", "DEFINED_PHASES": "DEFINED_PHASES", "DEPEND": "DEPEND",
	"DESCRIPTION": gentoo.PkgKeyDesc, "EAPI": "EAPI", "IDEPEND": "IDEPEND",
	"IUSE": "IUSE", "KEYWORDS": "KEYWORDS", "LICENSE": "LICENSE",
	"PDEPEND": "PDEPEND", "PROPERTIES": "PROPERTIES", "PROVIDES": "PROVIDES",
	"RDEPEND": "RDEPEND", "repository": gentoo.PkgKeyRepo, "REQUIRES": "REQUIRES",
	"RESTRICT": "RESTRICT", "SLOT": "SLOT", "USE": "USE",
}

// wantMeta selects the metadata read from packages.
func wantMeta(name string) bool {
	if name == "CATEGORY" || name == "PF" {
		return true
	}
	_, ok := indexKeys[name]
	return ok
}

// pkgFile is one package file found in the PKGDIR.
type pkgFile struct {
	Path  string // slash-separated, relative to the PKGDIR
	Size  int64
	MTime int64 // seconds
}

// entryFor reads the package at f (opened through root) and returns its
// Packages entry: metadata, PATH, SIZE, MTIME, MD5 and SHA1. A package whose
// metadata is unreadable, or whose name and place disagree with its metadata
// the way Portage checks them, is an error.
func entryFor(ctx context.Context, root *os.Root, f pkgFile) (gentoo.PackageFields, error) {
	fh, err := root.Open(f.Path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	var md map[string][]byte
	switch packageExt(path.Base(f.Path)) {
	case extGpkg:
		md, err = ReadGpkgMetadata(fh, wantMeta)
	default:
		md, err = ReadXpak(fh, f.Size, wantMeta)
	}
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	e, err := entryFromMetadata(md, f.Path)
	if err != nil {
		return nil, err
	}
	if _, err := fh.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	m, s := md5.New(), sha1.New()
	n, err := io.Copy(io.MultiWriter(m, s), ctxReader{ctx, fh})
	if err != nil {
		return nil, fmt.Errorf("checksum: %w", err)
	}
	if n != f.Size {
		return nil, fmt.Errorf("changed while reading (%d bytes, expected %d)", n, f.Size)
	}
	e[gentoo.PkgKeyMD5] = hex.EncodeToString(m.Sum(nil))
	e[gentoo.PkgKeySHA1] = hex.EncodeToString(s.Sum(nil))
	e[gentoo.PkgKeySize] = strconv.FormatInt(f.Size, 10)
	e[gentoo.PkgKeyMTime] = strconv.FormatInt(f.MTime, 10)
	e[gentoo.PkgKeyPath] = f.Path
	return e, nil
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// entryFromMetadata builds the metadata part of an entry and checks the
// file's place: cat/pf.ext or All/pf.ext, or cat/pn/pf-BUILD_ID.ext for
// multi-instance packages.
func entryFromMetadata(md map[string][]byte, rel string) (gentoo.PackageFields, error) {
	norm := func(k string) string { return strings.Join(strings.Fields(string(md[k])), " ") }
	cat, pf, slot := norm("CATEGORY"), norm("PF"), norm("SLOT")
	if cat == "" || pf == "" || slot == "" {
		return nil, fmt.Errorf("metadata lacks CATEGORY, PF or SLOT")
	}
	if strings.ContainsAny(cat+pf, "/ ") {
		return nil, fmt.Errorf("bad CATEGORY %q or PF %q", cat, pf)
	}
	e := gentoo.PackageFields{gentoo.PkgKeyCPV: cat + "/" + pf}
	for k, ik := range indexKeys {
		if v := norm(k); v != "" {
			e[ik] = v
		}
	}
	dir, file := path.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	ext := packageExt(file)
	base := strings.TrimSuffix(file, ext)
	buildID := ""
	if base != pf {
		id, ok := strings.CutPrefix(base, pf+"-")
		if !ok || id == "" || strings.Trim(id, "0123456789") != "" || ext == extTbz2 {
			return nil, fmt.Errorf("file name %q does not match PF %q", file, pf)
		}
		buildID = strings.TrimLeft(id, "0")
		if buildID == "" {
			return nil, fmt.Errorf("file name %q has build id 0", file)
		}
	}
	if buildID != "" || ext == extXpak {
		// Multi-instance: cat/pn/pf-N.ext.
		if buildID == "" {
			return nil, fmt.Errorf("multi-instance package %q has no build id", file)
		}
		pc, _, ok := strings.Cut(dir, "/")
		if !ok || pc != cat || !strings.HasPrefix(pf, path.Base(dir)+"-") {
			return nil, fmt.Errorf("multi-instance package %q is not below %s/<pn>/", rel, cat)
		}
		if e[gentoo.PkgKeyBuildID] == "" {
			e[gentoo.PkgKeyBuildID] = buildID
		}
	} else if dir != cat && dir != "All" {
		return nil, fmt.Errorf("package %q of category %s is not in %s/ or All/", rel, cat, cat)
	}
	if id := e[gentoo.PkgKeyBuildID]; id != "" {
		if _, err := strconv.ParseUint(id, 10, 63); err != nil {
			return nil, fmt.Errorf("bad BUILD_ID %q", id)
		}
	}
	return e, nil
}
