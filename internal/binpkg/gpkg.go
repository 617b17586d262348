package binpkg

import (
	"archive/tar"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// A gpkg (GLEP 78) is an uncompressed tar archive whose members live below
// one directory named after the package:
//
//	<basename>/gpkg-1                      format marker
//	<basename>/metadata.tar[.gz|.bz2|.xz|.zst|...]  metadata/<KEY> files
//	<basename>/image.tar[...]              the files to install
//	<basename>/Manifest                    checksums (and signatures)
//
// Portage looks members up by their base name, whatever the directory.

const (
	gpkgMarker = "gpkg-1"
	// maxMetadataTar bounds the decompressed metadata archive scanned.
	maxMetadataTar = 256 << 20
	// maxZstdWindow bounds the zstd window (memory) a metadata stream may
	// ask for; zstd uses at most 8 MiB below level 20 without --long.
	maxZstdWindow = 128 << 20
)

// ErrNotGpkg means the archive is not a gpkg (no gpkg-1 marker or no
// metadata member).
var ErrNotGpkg = errors.New("not a gpkg archive")

// ErrUnsupportedCompression means the gpkg metadata is compressed with a
// method lanmirror cannot read (lz4, lzip, lzop).
var ErrUnsupportedCompression = errors.New("unsupported gpkg metadata compression")

// ReadGpkgMetadata reads the metadata of a gpkg archive from r: the content
// of every metadata/<KEY> file whose KEY want accepts (want nil: all).
func ReadGpkgMetadata(r io.Reader, want func(name string) bool) (map[string][]byte, error) {
	tr := tar.NewReader(r)
	var out map[string][]byte
	marker := false
	for out == nil || !marker {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if out == nil {
				return nil, fmt.Errorf("%w: no metadata member", ErrNotGpkg)
			}
			return nil, fmt.Errorf("%w: no %s marker", ErrNotGpkg, gpkgMarker)
		}
		if err != nil {
			return nil, fmt.Errorf("read gpkg archive: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		base := path.Base(h.Name)
		if base == gpkgMarker {
			marker = true
			continue
		}
		if out != nil || !strings.HasPrefix(base, "metadata.tar") {
			continue
		}
		out, err = readMetadataTar(tr, strings.TrimPrefix(base, "metadata.tar"), want)
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// readMetadataTar decompresses (by file name extension ext) and reads the
// inner metadata archive.
func readMetadataTar(r io.Reader, ext string, want func(string) bool) (map[string][]byte, error) {
	var dr io.Reader
	switch ext {
	case "":
		dr = r
	case ".gz":
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("gpkg metadata: %w", err)
		}
		defer zr.Close()
		dr = zr
	case ".bz2":
		dr = bzip2.NewReader(r)
	case ".zst":
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			return nil, fmt.Errorf("gpkg metadata: %w", err)
		}
		defer zr.Close()
		dr = zr
	case ".xz":
		zr, err := xz.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("gpkg metadata: %w", err)
		}
		dr = zr
	default:
		return nil, fmt.Errorf("%w: metadata.tar%s", ErrUnsupportedCompression, ext)
	}
	tr := tar.NewReader(io.LimitReader(dr, maxMetadataTar))
	out := map[string][]byte{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("gpkg metadata archive: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		key, ok := strings.CutPrefix(h.Name, "metadata/")
		if !ok || key == "" || strings.Contains(key, "/") {
			continue
		}
		if want != nil && !want(key) {
			continue
		}
		if h.Size > maxMetaValue {
			return nil, fmt.Errorf("gpkg metadata %q of %d bytes is too large", key, h.Size)
		}
		v, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("gpkg metadata %q: %w", key, err)
		}
		out[key] = v
	}
}
