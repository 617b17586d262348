package testtree

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// rnd is the deterministic random source of a tree.
type rnd struct{ r *rand.Rand }

// newRand returns a source for seed; stream separates Generate from Mutate.
func newRand(seed, stream uint64) *rnd {
	return &rnd{r: rand.New(rand.NewPCG(seed, stream))}
}

// intn returns a number in [0, n).
func (r *rnd) intn(n int) int { return r.r.IntN(n) }

// between returns a number in [lo, hi].
func (r *rnd) between(lo, hi int) int { return lo + r.r.IntN(hi-lo+1) }

var categoryPrefixes = []string{
	"app-admin", "app-arch", "app-editors", "app-misc", "app-text", "dev-cpp", "dev-db", "dev-lang",
	"dev-libs", "dev-perl", "dev-python", "dev-ruby", "dev-util", "games-action", "media-gfx", "media-libs",
	"media-sound", "net-analyzer", "net-libs", "net-misc", "sci-libs", "sys-apps", "sys-devel", "sys-fs",
	"sys-kernel", "sys-libs", "www-client", "www-servers", "x11-libs", "x11-misc",
}

var pkgWords = []string{
	"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo",
	"lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform",
	"victor", "whiskey", "xray", "yankee", "zulu", "libfoo", "py-bar", "perl-Baz", "qt-widgets",
}

var eclassWords = []string{
	"toolchain-funcs", "multilib", "flag-o-matic", "cmake", "meson", "python-r1", "distutils-r1",
	"autotools", "systemd", "git-r3", "cargo", "go-module",
}

var textWords = []string{
	"the", "package", "build", "install", "configure", "src_prepare", "default", "einfo", "die",
	"KEYWORDS", "IUSE", "DEPEND", "RDEPEND", "amd64", "x86", "arm64", "~ppc", "LICENSE", "GPL-2",
	"SLOT", "0", "inherit", "econf", "emake", "DESTDIR", "${ED}", "dodoc", "README", "newinitd",
	"use", "ssl", "doc", "test", "static-libs", "python_targets_python3_12", "||", "(", ")", "[", "]",
}

// categoryNames returns the categories of a tree of about files files.
func categoryNames(files int) []string {
	n := files / 600
	if n < 6 {
		n = 6
	}
	if n > 170 {
		n = 170
	}
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		name := categoryPrefixes[i%len(categoryPrefixes)]
		if i >= len(categoryPrefixes) {
			name = fmt.Sprintf("%s%d", name, i/len(categoryPrefixes))
		}
		out = append(out, name)
	}
	return out
}

// text returns lines of words, between lo and hi bytes long.
func (g *gen) text(lo, hi int) []byte {
	n := g.rng.between(lo, hi)
	var b strings.Builder
	b.Grow(n + 32)
	col := 0
	for b.Len() < n {
		w := textWords[g.rng.intn(len(textWords))]
		if col+len(w) > 72 {
			b.WriteByte('\n')
			col = 0
		} else if col > 0 {
			b.WriteByte(' ')
			col++
		}
		b.WriteString(w)
		col += len(w)
	}
	out := []byte(b.String())[:n]
	if n > 0 {
		out[n-1] = '\n'
	}
	return out
}

// ebuild returns an ebuild-like file for category cat and package-version pv.
func (g *gen) ebuild(cat, pv string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# Copyright 1999-2024 Gentoo Authors\n# Distributed under the terms of the GNU General Public License v2\n\n")
	fmt.Fprintf(&b, "EAPI=8\n\ninherit %s %s\n\n", eclassWords[g.rng.intn(len(eclassWords))], eclassWords[g.rng.intn(len(eclassWords))])
	fmt.Fprintf(&b, "DESCRIPTION=\"%s test package\"\nHOMEPAGE=\"https://example.org/%s\"\n", pv, pv)
	fmt.Fprintf(&b, "SRC_URI=\"https://example.org/dist/%s.tar.xz\"\n\nLICENSE=\"GPL-2\"\nSLOT=\"0\"\n", pv)
	fmt.Fprintf(&b, "KEYWORDS=\"amd64 ~arm64 x86\"\nIUSE=\"doc ssl test\"\n\n")
	fmt.Fprintf(&b, "RDEPEND=\"%s/dep-%d\"\nDEPEND=\"${RDEPEND}\"\n\n", cat, g.rng.intn(1000))
	b.Write(g.text(200, 3000))
	return []byte(b.String())
}

// metadataXML returns a metadata.xml for pkg.
func (g *gen) metadataXML(pkg string) []byte {
	return []byte(fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE pkgmetadata SYSTEM "https://www.gentoo.org/dtd/metadata.dtd">
<pkgmetadata>
	<maintainer type="person">
		<email>dev%d@gentoo.org</email>
	</maintainer>
	<upstream>
		<remote-id type="github">example/%s</remote-id>
	</upstream>
</pkgmetadata>
`, g.rng.intn(500), pkg))
}

// hex returns n lowercase hex digits.
func (g *gen) hex(n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[g.rng.intn(16)]
	}
	return string(b)
}

// random returns n incompressible bytes.
func (g *gen) random(n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := g.rng.r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// bigContent returns the large file: text lines with stretches of random
// bytes, so that it both compresses and has literal-heavy parts.
func (g *gen) bigContent(n int64) []byte {
	b := make([]byte, 0, n)
	for int64(len(b)) < n {
		if g.rng.intn(5) == 0 {
			b = append(b, g.random(4096)...)
		} else {
			b = append(b, g.text(2000, 6000)...)
		}
	}
	return b[:n]
}
