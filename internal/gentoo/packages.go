package gentoo

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The binary package index (PKGDIR/Packages) as Portage's bintree reads and
// writes it: a header block, a blank line, then one block per package, each
// block made of "KEY: value" lines and ended by a blank line. Keys are written
// sorted and keys with empty values are left out. Portage stops reading at the
// first empty block; this reader skips extra blank lines instead.

// Well-known keys of the Packages index.
const (
	// Header keys.
	PkgKeyPackages  = "PACKAGES"  // number of package blocks
	PkgKeyTimestamp = "TIMESTAMP" // seconds since the epoch; clients refetch when it grows
	PkgKeyVersion   = "VERSION"   // index format version; Portage accepts <= 0
	PkgKeyURI       = "URI"       // optional base URI of the packages

	// Package keys (as they appear in the file: Portage translates
	// DESCRIPTION to DESC, _mtime_ to MTIME and repository to REPO).
	PkgKeyCPV     = "CPV"
	PkgKeyBuildID = "BUILD_ID"
	PkgKeyPath    = "PATH"
	PkgKeySize    = "SIZE"
	PkgKeyMTime   = "MTIME"
	PkgKeyMD5     = "MD5"
	PkgKeySHA1    = "SHA1"
	PkgKeySlot    = "SLOT"
	PkgKeyDesc    = "DESC"
	PkgKeyRepo    = "REPO"
)

// PackagesVersion is the index format version Portage writes and accepts.
const PackagesVersion = "0"

// MaxPackagesLine bounds one line of a Packages index; longer lines are an
// error rather than unbounded memory.
const MaxPackagesLine = 1 << 20

// PackageFields is one block of a Packages index: key to value.
type PackageFields map[string]string

// PackagesIndex is a whole Packages index held in memory.
type PackagesIndex struct {
	Header   PackageFields
	Packages []PackageFields
}

// PackagesReader reads a Packages index block by block, so that a large
// upstream index can be scanned without holding it whole.
type PackagesReader struct {
	r      *bufio.Reader
	line   int
	header PackageFields
	read   bool // header read
}

// NewPackagesReader returns a reader of the index in r.
func NewPackagesReader(r io.Reader) *PackagesReader {
	return &PackagesReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// Header reads (once) and returns the header block. An index whose first
// line is blank has an empty header.
func (p *PackagesReader) Header() (PackageFields, error) {
	if p.read {
		return p.header, nil
	}
	h, err := p.block(false)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	p.read = true
	if h == nil {
		h = PackageFields{}
	}
	p.header = h
	return h, nil
}

// Next returns the next package block, or io.EOF after the last one. Blocks
// without a CPV are skipped, as Portage does.
func (p *PackagesReader) Next() (PackageFields, error) {
	if _, err := p.Header(); err != nil {
		return nil, err
	}
	for {
		b, err := p.block(true)
		if b == nil {
			if err == nil {
				err = io.EOF
			}
			return nil, err
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		if b[PkgKeyCPV] == "" {
			continue
		}
		return b, nil
	}
}

// block reads one block: lines up to a blank line or the end of input (then
// the error is io.EOF, possibly with a last block). With skipBlank, leading
// blank lines are skipped, so an empty block is never returned.
func (p *PackagesReader) block(skipBlank bool) (PackageFields, error) {
	var b PackageFields
	for {
		line, err := p.readLine()
		if err != nil {
			return b, err
		}
		if line == "" {
			if b == nil && skipBlank {
				continue
			}
			return b, nil
		}
		if b == nil {
			b = PackageFields{}
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			// Portage drops the one character after the colon (the space).
			if v != "" {
				v = v[1:]
			}
			b[k] = v
		}
	}
}

// readLine returns the next line without its end of line; a last line without
// a newline is returned normally, and io.EOF only when nothing is left.
func (p *PackagesReader) readLine() (string, error) {
	var sb strings.Builder
	for {
		frag, isPrefix, err := p.r.ReadLine()
		if err != nil {
			if errors.Is(err, io.EOF) && sb.Len() > 0 {
				break
			}
			if errors.Is(err, io.EOF) {
				return "", io.EOF
			}
			return "", fmt.Errorf("packages index: line %d: %w", p.line+1, err)
		}
		if sb.Len()+len(frag) > MaxPackagesLine {
			return "", fmt.Errorf("packages index: line %d longer than %d bytes", p.line+1, MaxPackagesLine)
		}
		sb.Write(frag)
		if !isPrefix {
			break
		}
	}
	p.line++
	return strings.TrimSuffix(sb.String(), "\r"), nil
}

// ReadPackages reads a whole Packages index.
func ReadPackages(r io.Reader) (*PackagesIndex, error) {
	pr := NewPackagesReader(r)
	h, err := pr.Header()
	if err != nil {
		return nil, err
	}
	ix := &PackagesIndex{Header: h}
	for {
		b, err := pr.Next()
		if errors.Is(err, io.EOF) {
			return ix, nil
		}
		if err != nil {
			return nil, err
		}
		ix.Packages = append(ix.Packages, b)
	}
}

// Stamp sets the header's PACKAGES count and TIMESTAMP, and VERSION when it
// is missing, as Portage does before writing an index.
func (ix *PackagesIndex) Stamp(t time.Time) {
	if ix.Header == nil {
		ix.Header = PackageFields{}
	}
	ix.Header[PkgKeyPackages] = strconv.Itoa(len(ix.Packages))
	ix.Header[PkgKeyTimestamp] = strconv.FormatInt(t.Unix(), 10)
	if ix.Header[PkgKeyVersion] == "" {
		ix.Header[PkgKeyVersion] = PackagesVersion
	}
}

// Sort orders the package blocks by CPV, then BUILD_ID (numerically), then
// PATH, so that the written index does not depend on directory order.
// (Portage orders by version; clients do not depend on the order.)
func (ix *PackagesIndex) Sort() {
	slices.SortStableFunc(ix.Packages, func(a, b PackageFields) int {
		if c := strings.Compare(a[PkgKeyCPV], b[PkgKeyCPV]); c != 0 {
			return c
		}
		ai, _ := strconv.ParseInt(a[PkgKeyBuildID], 10, 64)
		bi, _ := strconv.ParseInt(b[PkgKeyBuildID], 10, 64)
		if ai != bi {
			if ai < bi {
				return -1
			}
			return 1
		}
		return strings.Compare(a[PkgKeyPath], b[PkgKeyPath])
	})
}

// WriteTo writes the index: the header, then every package block in order,
// each block's keys sorted, empty values left out, each block followed by a
// blank line. A key or value that cannot be represented (a newline, a colon
// in a key, an empty key) is an error and nothing more is written.
func (ix *PackagesIndex) WriteTo(w io.Writer) (int64, error) {
	bw := bufio.NewWriter(w)
	cw := &countWriter{w: bw}
	if err := writeBlock(cw, ix.Header); err != nil {
		return cw.n, fmt.Errorf("packages index header: %w", err)
	}
	for i, p := range ix.Packages {
		if err := writeBlock(cw, p); err != nil {
			return cw.n, fmt.Errorf("packages index entry %d (%s): %w", i, p[PkgKeyCPV], err)
		}
	}
	if err := bw.Flush(); err != nil {
		return cw.n, fmt.Errorf("packages index: %w", err)
	}
	return cw.n, nil
}

func writeBlock(w io.Writer, b PackageFields) error {
	for _, k := range slices.Sorted(maps.Keys(b)) {
		v := b[k]
		if v == "" {
			continue
		}
		if k == "" || strings.ContainsAny(k, ":\n\r") || strings.TrimSpace(k) != k {
			return fmt.Errorf("invalid key %q", k)
		}
		if strings.ContainsAny(v, "\n\r") {
			return fmt.Errorf("key %s: value contains a newline", k)
		}
		if _, err := io.WriteString(w, k+": "+v+"\n"); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, "\n")
	return err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
