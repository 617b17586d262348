package gentoo

import (
	"bufio"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"

	"golang.org/x/crypto/blake2b"
	"golang.org/x/crypto/blake2s"
)

// Layout is a GLEP 75 distfiles mirror layout: where a mirror keeps a
// distfile below its distfiles/ directory. The zero Layout is "flat".
type Layout struct {
	algo    string // "" for flat, else the Manifest hash name (BLAKE2B...)
	cutoffs []int  // bits per directory level, each a multiple of 4
}

// FilenameHash returns the "filename-hash ALGO CUTOFFS" layout; cutoffs
// are bits per directory level (multiples of 4), e.g. BLAKE2B with 8.
func FilenameHash(algo string, cutoffs ...int) (Layout, error) {
	newHash, ok := layoutHashes[algo]
	if !ok {
		return Layout{}, fmt.Errorf("layout: unsupported hash %q", algo)
	}
	if len(cutoffs) == 0 {
		return Layout{}, fmt.Errorf("layout: filename-hash without cutoffs")
	}
	total := 0
	for _, c := range cutoffs {
		if c <= 0 || c%4 != 0 {
			return Layout{}, fmt.Errorf("layout: cutoff %d is not a positive multiple of 4", c)
		}
		total += c
	}
	if total > newHash().Size()*8 {
		return Layout{}, fmt.Errorf("layout: cutoffs (%d bits) longer than the %s digest", total, algo)
	}
	return Layout{algo: algo, cutoffs: append([]int(nil), cutoffs...)}, nil
}

// layoutHashes are the hashes a filename-hash layout may name (Portage's
// names, as in Manifests).
var layoutHashes = map[string]func() hash.Hash{
	"BLAKE2B":  func() hash.Hash { h, _ := blake2b.New512(nil); return h },
	"BLAKE2S":  func() hash.Hash { h, _ := blake2s.New256(nil); return h },
	"SHA512":   sha512.New,
	"SHA256":   sha256.New,
	"SHA1":     sha1.New,
	"MD5":      md5.New,
	"SHA3_256": func() hash.Hash { return sha3.New256() },
	"SHA3_512": func() hash.Hash { return sha3.New512() },
}

// ParseLayout reads a mirror's layout.conf and returns the first entry of
// its [structure] section (keys 0, 1, ... in order of preference) that
// lanmirror can use: "flat" or "filename-hash ALGO CUTOFFS" with a known
// hash. Like Portage, it returns flat when the section is missing or no
// entry is usable ("content-hash" needs the digests, not the name, and is
// skipped). Syntax errors are errors; the caller then assumes flat.
func ParseLayout(r io.Reader) (Layout, error) {
	entries, err := readStructure(r)
	if err != nil {
		return Layout{}, err
	}
	for i := 0; ; i++ {
		v, ok := entries[strconv.Itoa(i)]
		if !ok {
			return Layout{}, nil
		}
		if l, ok := parseLayoutEntry(v); ok {
			return l, nil
		}
	}
}

func parseLayoutEntry(v string) (Layout, bool) {
	f := strings.Fields(v)
	switch {
	case len(f) == 1 && f[0] == "flat":
		return Layout{}, true
	case len(f) == 3 && f[0] == "filename-hash":
		var cut []int
		for _, s := range strings.Split(f[2], ":") {
			c, err := strconv.Atoi(s)
			if err != nil {
				return Layout{}, false
			}
			cut = append(cut, c)
		}
		l, err := FilenameHash(f[1], cut...)
		return l, err == nil
	}
	return Layout{}, false
}

// readStructure reads the keys of the [structure] section of an INI file
// (Python configparser syntax: "key = value" or "key: value", comments
// with # or ;, indented lines continue a value).
func readStructure(r io.Reader) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(io.LimitReader(r, 1<<20))
	section, last := "", ""
	for n := 1; sc.Scan(); n++ {
		raw := sc.Text()
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if raw[0] == ' ' || raw[0] == '\t' {
			if last == "" {
				return nil, fmt.Errorf("layout.conf line %d: continuation without a key", n)
			}
			if section == "structure" {
				out[last] += " " + line
			}
			continue
		}
		if line[0] == '[' {
			if !strings.HasSuffix(line, "]") {
				return nil, fmt.Errorf("layout.conf line %d: bad section header %q", n, line)
			}
			section, last = strings.TrimSpace(line[1:len(line)-1]), ""
			continue
		}
		i := strings.IndexAny(line, "=:")
		if i <= 0 {
			return nil, fmt.Errorf("layout.conf line %d: expected key = value, got %q", n, line)
		}
		if section == "" {
			return nil, fmt.Errorf("layout.conf line %d: key outside a section", n)
		}
		last = strings.ToLower(strings.TrimSpace(line[:i]))
		if section == "structure" {
			out[last] = strings.TrimSpace(line[i+1:])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("layout.conf: %w", err)
	}
	return out, nil
}

// Flat reports whether l is the flat layout.
func (l Layout) Flat() bool { return l.algo == "" }

// String returns the layout as a layout.conf [structure] value.
func (l Layout) String() string {
	if l.Flat() {
		return "flat"
	}
	parts := make([]string, len(l.cutoffs))
	for i, c := range l.cutoffs {
		parts[i] = strconv.Itoa(c)
	}
	return "filename-hash " + l.algo + " " + strings.Join(parts, ":")
}

// Path returns where the distfile name lives below a mirror's distfiles/
// directory: name itself for flat, "80/which-2.23.tar.gz" for
// filename-hash BLAKE2B 8. The result is not percent-encoded.
func (l Layout) Path(name string) string {
	if l.Flat() {
		return name
	}
	h := layoutHashes[l.algo]()
	io.WriteString(h, name)
	sum := hex.EncodeToString(h.Sum(nil))
	var b strings.Builder
	for _, c := range l.cutoffs {
		b.WriteString(sum[:c/4])
		b.WriteByte('/')
		sum = sum[c/4:]
	}
	b.WriteString(name)
	return b.String()
}

// ServedLayoutConf is the layout.conf lanmirror serves: it answers both
// the filename-hash BLAKE2B 8 paths (preferred) and the flat paths.
func ServedLayoutConf() []byte {
	return []byte("# lanmirror serves every distfile under both layouts (GLEP 75)\n" +
		"[structure]\n0=filename-hash BLAKE2B 8\n1=flat\n")
}
