package gentoo

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/blake2b"
)

// Manifest tags (GLEP 74). EBUILD, AUX and MISC are the deprecated aliases
// of DATA still found at package level.
const (
	TagDist      = "DIST"
	TagData      = "DATA"
	TagEbuild    = "EBUILD"
	TagAux       = "AUX"
	TagMisc      = "MISC"
	TagManifest  = "MANIFEST"
	TagIgnore    = "IGNORE"
	TagTimestamp = "TIMESTAMP"
)

// Hash names lanmirror checks. Other names in a Manifest are kept but not
// checked.
const (
	HashBLAKE2B = "BLAKE2B"
	HashSHA512  = "SHA512"
)

// maxManifestLine bounds one Manifest line; real lines are a few hundred
// bytes.
const maxManifestLine = 64 << 10

// ManifestEntry is one line of a Manifest.
type ManifestEntry struct {
	// Tag is the entry type (DIST, DATA, EBUILD, AUX, MISC, MANIFEST,
	// IGNORE, TIMESTAMP or a tag this version does not know).
	Tag string
	// Path is the unescaped path (a file name for DIST); empty for
	// TIMESTAMP.
	Path string
	// Size is the file size; -1 for IGNORE and TIMESTAMP.
	Size int64
	// Hashes maps hash names (BLAKE2B, SHA512, SHA256, ...) to lowercase
	// hex values, in the order of the line.
	Hashes []Hash
	// Time is the value of a TIMESTAMP entry.
	Time time.Time
}

// Hash is one "NAME value" pair of a Manifest line.
type Hash struct {
	Name string
	Hex  string
}

// Dist converts a DIST entry to a Dist. ok is false for other tags.
func (e ManifestEntry) Dist() (d Dist, ok bool) {
	if e.Tag != TagDist {
		return Dist{}, false
	}
	d = Dist{Name: e.Path, Size: e.Size}
	for _, h := range e.Hashes {
		switch h.Name {
		case HashBLAKE2B:
			d.BLAKE2B, _ = hex.DecodeString(h.Hex)
		case HashSHA512:
			d.SHA512, _ = hex.DecodeString(h.Hex)
		}
	}
	return d, true
}

// Manifest is a parsed Manifest file.
type Manifest struct {
	// Entries in file order; malformed lines are not included.
	Entries []ManifestEntry
	// Signed is true when the file was an OpenPGP cleartext-signed
	// message. The signature is not verified: lanmirror trusts the tree
	// it was given (Portage verifies the tree it syncs with gemato).
	Signed bool
	// Bad describes the malformed lines that were skipped (at most
	// maxBadLines of them; BadCount counts them all).
	Bad      []string
	BadCount int
}

const maxBadLines = 16

// Dists returns the DIST entries of m.
func (m *Manifest) Dists() []Dist {
	var out []Dist
	for _, e := range m.Entries {
		if d, ok := e.Dist(); ok {
			out = append(out, d)
		}
	}
	return out
}

// ReadManifestFile parses the Manifest at path; a name ending in ".gz" is
// decompressed.
func ReadManifestFile(path string) (*Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", path, err)
		}
		defer zr.Close()
		r = zr
	}
	m, err := ParseManifest(r)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	return m, nil
}

// ParseManifest reads a Manifest (GLEP 74). An OpenPGP cleartext signature
// armor is removed (without verifying the signature). Malformed lines are
// skipped and reported in Manifest.Bad; the error is only for read failures
// and lines longer than 64 KiB.
func ParseManifest(r io.Reader) (*Manifest, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxManifestLine)
	m := &Manifest{}
	const (
		plain = iota
		armorHeader
		signedBody
		signature
	)
	state := plain
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimRight(sc.Text(), " \t\r")
		switch state {
		case plain:
			if line == "-----BEGIN PGP SIGNED MESSAGE-----" {
				m.Signed = true
				state = armorHeader
				continue
			}
		case armorHeader:
			// "Hash: SHA512" lines up to the first empty line.
			if line == "" {
				state = signedBody
			}
			continue
		case signedBody:
			if line == "-----BEGIN PGP SIGNATURE-----" {
				state = signature
				continue
			}
			// Dash-escaped lines ("- -----...") lose their "- ".
			line = strings.TrimPrefix(line, "- ")
		case signature:
			if line == "-----END PGP SIGNATURE-----" {
				state = plain
			}
			continue
		}
		if strings.TrimSpace(line) == "" {
			continue // empty lines and stray whitespace are ignored (GLEP 74)
		}
		e, err := parseManifestLine(line)
		if err != nil {
			m.BadCount++
			if len(m.Bad) < maxBadLines {
				m.Bad = append(m.Bad, fmt.Sprintf("line %d: %v", lineNo, err))
			}
			continue
		}
		m.Entries = append(m.Entries, e)
	}
	if err := sc.Err(); err != nil {
		return m, fmt.Errorf("line %d: %w", lineNo+1, err)
	}
	return m, nil
}

// parseManifestLine parses one non-empty line.
func parseManifestLine(line string) (ManifestEntry, error) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return ManifestEntry{}, errors.New("empty line")
	}
	e := ManifestEntry{Tag: f[0], Size: -1}
	switch e.Tag {
	case TagTimestamp:
		if len(f) != 2 {
			return e, errors.New("TIMESTAMP: want one value")
		}
		t, err := time.Parse("2006-01-02T15:04:05Z", f[1])
		if err != nil {
			return e, fmt.Errorf("TIMESTAMP: %w", err)
		}
		e.Time = t
		return e, nil
	case TagIgnore:
		if len(f) != 2 {
			return e, errors.New("IGNORE: want one path")
		}
		p, err := unescapePath(f[1])
		if err != nil {
			return e, fmt.Errorf("IGNORE: %w", err)
		}
		e.Path = p
		return e, nil
	}
	if !isTag(e.Tag) {
		return e, fmt.Errorf("bad tag %.40q", e.Tag)
	}
	if len(f) < 3 {
		return e, fmt.Errorf("%s: want path and size", e.Tag)
	}
	p, err := unescapePath(f[1])
	if err != nil {
		return e, fmt.Errorf("%s: %w", e.Tag, err)
	}
	e.Path = p
	size, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil || size < 0 {
		return e, fmt.Errorf("%s %s: bad size %.40q", e.Tag, p, f[2])
	}
	e.Size = size
	rest := f[3:]
	if len(rest)%2 != 0 {
		return e, fmt.Errorf("%s %s: hash name without value", e.Tag, p)
	}
	for i := 0; i < len(rest); i += 2 {
		name, val := rest[i], strings.ToLower(rest[i+1])
		if !isTag(name) {
			return e, fmt.Errorf("%s %s: bad hash name %.40q", e.Tag, p, name)
		}
		if _, err := hex.DecodeString(val); err != nil || val == "" {
			return e, fmt.Errorf("%s %s: %s value is not hex", e.Tag, p, name)
		}
		if want := hashLen(name); want > 0 && len(val) != 2*want {
			return e, fmt.Errorf("%s %s: %s value has %d hex digits, want %d", e.Tag, p, name, len(val), 2*want)
		}
		e.Hashes = append(e.Hashes, Hash{Name: name, Hex: val})
	}
	if e.Tag == TagDist {
		if err := checkDistName(p); err != nil {
			return e, fmt.Errorf("DIST: %w", err)
		}
	}
	return e, nil
}

// isTag reports whether s looks like a tag or hash name: upper-case
// letters, digits and underscores.
func isTag(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// hashLen is the digest length in bytes of the hashes lanmirror checks
// (0: not checked, any length accepted).
func hashLen(name string) int {
	switch name {
	case HashBLAKE2B, HashSHA512:
		return 64
	}
	return 0
}

// checkDistName rejects distfile names that are not a single path segment.
func checkDistName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("bad distfile name %.80q", name)
	}
	return nil
}

// unescapePath decodes the GLEP 74 escapes \xHH, \uHHHH and \UHHHHHHHH.
// Any other use of a backslash is an error.
func unescapePath(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		if !utf8.ValidString(s) {
			return "", errors.New("path is not UTF-8")
		}
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			b.WriteByte(c)
			i++
			continue
		}
		if i+1 >= len(s) {
			return "", errors.New("path ends in a backslash")
		}
		var n int
		switch s[i+1] {
		case 'x':
			n = 2
		case 'u':
			n = 4
		case 'U':
			n = 8
		default:
			return "", fmt.Errorf(`bad escape \%c in path`, s[i+1])
		}
		if i+2+n > len(s) {
			return "", errors.New("short escape in path")
		}
		v, err := strconv.ParseUint(s[i+2:i+2+n], 16, 32)
		if err != nil || v > utf8.MaxRune || (n == 2 && v > 0x7f) {
			return "", fmt.Errorf("bad escape %q in path", s[i:i+2+n])
		}
		b.WriteRune(rune(v))
		i += 2 + n
	}
	out := b.String()
	if !utf8.ValidString(out) {
		return "", errors.New("path is not UTF-8")
	}
	return out, nil
}

// MismatchError says how a file differs from its DIST entry.
type MismatchError struct {
	Name string // distfile name
	What string // "size", "BLAKE2B" or "SHA512"
	Want string // expected size or hex digest
	Got  string // actual size or hex digest
}

func (e *MismatchError) Error() string {
	if e.What == "size" {
		return fmt.Sprintf("%s: size %s, Manifest says %s", e.Name, e.Got, e.Want)
	}
	return fmt.Sprintf("%s: %s digest %s, Manifest says %s", e.Name, e.What, short(e.Got), short(e.Want))
}

func short(h string) string {
	if len(h) > 16 {
		return h[:16] + "…"
	}
	return h
}

// Digester computes the digests a DIST entry carries while a file is
// written through it, so a download can be checked without reading it
// twice.
type Digester struct {
	n      int64
	b2     hash.Hash
	sha512 hash.Hash
	w      io.Writer
}

// NewDigester returns a Digester for BLAKE2B and SHA512.
func NewDigester() *Digester {
	b2, _ := blake2b.New512(nil) // only fails for bad keys
	d := &Digester{b2: b2, sha512: sha512.New()}
	d.w = io.MultiWriter(d.b2, d.sha512)
	return d
}

// Write adds p to the digests.
func (g *Digester) Write(p []byte) (int, error) {
	g.n += int64(len(p))
	return g.w.Write(p)
}

// Size is the number of bytes written.
func (g *Digester) Size() int64 { return g.n }

// Check compares what was written with d: size first, then every digest d
// has. It returns a *MismatchError on the first difference.
func (g *Digester) Check(d Dist) error {
	if g.n != d.Size {
		return &MismatchError{Name: d.Name, What: "size", Want: strconv.FormatInt(d.Size, 10), Got: strconv.FormatInt(g.n, 10)}
	}
	if d.BLAKE2B != nil {
		if got := g.b2.Sum(nil); !bytes.Equal(got, d.BLAKE2B) {
			return &MismatchError{Name: d.Name, What: HashBLAKE2B, Want: hex.EncodeToString(d.BLAKE2B), Got: hex.EncodeToString(got)}
		}
	}
	if d.SHA512 != nil {
		if got := g.sha512.Sum(nil); !bytes.Equal(got, d.SHA512) {
			return &MismatchError{Name: d.Name, What: HashSHA512, Want: hex.EncodeToString(d.SHA512), Got: hex.EncodeToString(got)}
		}
	}
	return nil
}

// VerifyFile checks the file at path against d: its size (without reading
// it when the size already differs), then BLAKE2B and SHA512 where d has
// them. A difference is a *MismatchError.
func VerifyFile(path string, d Dist) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("verify %s: not a regular file", path)
	}
	if fi.Size() != d.Size {
		return &MismatchError{Name: d.Name, What: "size", Want: strconv.FormatInt(d.Size, 10), Got: strconv.FormatInt(fi.Size(), 10)}
	}
	return VerifyReader(f, d)
}

// VerifyReader reads r to its end and checks it against d.
func VerifyReader(r io.Reader, d Dist) error {
	g := NewDigester()
	if _, err := io.Copy(g, r); err != nil {
		return fmt.Errorf("verify %s: %w", d.Name, err)
	}
	return g.Check(d)
}

// DigestReader reads r to its end and returns the Dist entry that
// describes it under name (size, BLAKE2B and SHA512).
func DigestReader(name string, r io.Reader) (Dist, error) {
	g := NewDigester()
	if _, err := io.Copy(g, r); err != nil {
		return Dist{}, fmt.Errorf("digest %s: %w", name, err)
	}
	return Dist{Name: name, Size: g.n, BLAKE2B: g.b2.Sum(nil), SHA512: g.sha512.Sum(nil)}, nil
}

// FormatDistLine returns the Manifest line of d (without newline), in the
// form the gentoo repository uses: "DIST name size BLAKE2B hex SHA512 hex".
func FormatDistLine(d Dist) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %d", TagDist, escapePath(d.Name), d.Size)
	if d.BLAKE2B != nil {
		fmt.Fprintf(&b, " %s %x", HashBLAKE2B, d.BLAKE2B)
	}
	if d.SHA512 != nil {
		fmt.Fprintf(&b, " %s %x", HashSHA512, d.SHA512)
	}
	return b.String()
}

// EscapeManifestPath returns s as a Manifest path field: the GLEP 74
// escapes applied to backslashes, whitespace and control characters.
func EscapeManifestPath(s string) string { return escapePath(s) }

// escapePath applies the GLEP 74 escapes to the characters a path field
// cannot hold (backslash, whitespace, control characters).
func escapePath(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\\' || r < 0x20 || r == 0x7f || r == ' ':
			fmt.Fprintf(&b, `\x%02X`, r)
		case unicode.IsSpace(r) || unicode.IsControl(r):
			if r <= 0xffff {
				fmt.Fprintf(&b, `\u%04X`, r)
			} else {
				fmt.Fprintf(&b, `\U%08X`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
