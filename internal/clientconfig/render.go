package clientconfig

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Client files the blocks go to.
const (
	ReposConf    = "/etc/portage/repos.conf/gentoo.conf"
	MakeConf     = "/etc/portage/make.conf"
	MirrorsFile  = "/etc/portage/mirrors"
	BinreposConf = "/etc/portage/binrepos.conf/lanmirror.conf"
)

// Block is the configuration for one client file.
type Block struct {
	// File is the client file, absolute.
	File string
	// Append is true when the lines are added to an existing file
	// (make.conf, mirrors); otherwise the block is a whole drop-in file.
	Append bool
	// Section is the INI section a drop-in file holds ("" for none); a
	// script appending to a single-file repos.conf or binrepos.conf skips
	// it when the section already exists.
	Section string
	// Lines are the file's lines, comments included.
	Lines []string
}

// Notes are comments about parts left out (rsync or HTTP off).
func (s Server) Notes() []string {
	var n []string
	if s.RsyncPort == 0 || s.Module == "" {
		n = append(n, "The server does not serve the Gentoo tree over rsync (no rsync daemon or no module): keep your sync-uri.")
	}
	if s.HTTPPort == 0 {
		n = append(n, "The server's HTTP side is off (--http is empty): no distfiles mirror, fetch-through or binary packages.")
	}
	return n
}

// Blocks returns the client configuration, one block per file.
func (s Server) Blocks() []Block {
	var bs []Block
	if s.RsyncPort != 0 && s.Module != "" {
		bs = append(bs, Block{File: ReposConf, Section: "gentoo", Lines: []string{
			"# The Gentoo ebuild repository, synced from lanmirror (emerge --sync).",
			"# Verification settings stay those of /usr/share/portage/config/repos.conf.",
			"[gentoo]",
			"location = /var/db/repos/gentoo",
			"sync-type = rsync",
			"sync-uri = " + s.SyncURI(),
			"auto-sync = yes",
		}})
	}
	if s.HTTPPort == 0 {
		return bs
	}
	base := s.HTTPBase()
	fetch := base + FetchPath + `\${FILE}?uri=\${URI}`
	bs = append(bs, Block{File: MakeConf, Append: true, Lines: []string{
		"# lanmirror at " + s.Host + ": distfiles from its mirror (GLEP 75 layout).",
		`GENTOO_MIRRORS="` + base + `"`,
		"# Every fetch through lanmirror, https and RESTRICT=mirror files too: it answers",
		"# from its cache or its mirrors, or fetches the original URI itself (files the",
		"# tree's Manifests list) and verifies it. Leave FETCHCOMMAND_HTTP(S) unset, or",
		"# give them the same values.",
		`FETCHCOMMAND="wget -t 3 -T 60 --passive-ftp -O \"\${DISTDIR}/\${FILE}\" \"` + fetch + `\""`,
		`RESUMECOMMAND="wget -c -t 3 -T 60 --passive-ftp -O \"\${DISTDIR}/\${FILE}\" \"` + fetch + `\""`,
		"# The classic http-replicator setup instead of the two commands above",
		"# (lanmirror as a forward proxy for http:// fetches):",
		`#http_proxy="` + base + `"`,
	}})
	bs = append(bs, Block{File: MirrorsFile, Append: true, Lines: []string{
		"# lanmirror first, even for RESTRICT=mirror packages.",
		"local " + base,
	}})
	if s.Binpkgs {
		lines := []string{
			"# Binary packages from lanmirror: emerge --getbinpkg (or FEATURES=\"getbinpkg\").",
			"[lanmirror]",
			"sync-uri = " + base + BinpkgsPath,
			"priority = 10",
			"# Plain wget for packages, not the distfiles fetch-through of make.conf.",
			`fetchcommand = wget -t 3 -T 60 --passive-ftp -O "${DISTDIR}/${FILE}" "${URI}"`,
			`resumecommand = wget -c -t 3 -T 60 --passive-ftp -O "${DISTDIR}/${FILE}" "${URI}"`,
		}
		if s.LocalBinpkgs {
			lines = append(lines,
				"# Packages built locally are usually not signed; remove this line if yours",
				"# are (BINPKG_GPG_SIGNING_*) and the client trusts the key.")
			if s.UpstreamBinhost {
				lines = append(lines,
					"# It also turns off the check of the upstream binhost's signed packages,",
					"# which this repository lists too.")
			}
			lines = append(lines, "verify-signature = false")
		}
		bs = append(bs, Block{File: BinreposConf, Section: "lanmirror", Lines: lines})
	}
	return bs
}

// WriteText prints the blocks, each under a header naming its file.
func (s Server) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# Portage client configuration for the lanmirror server %s.\n", s.Host)
	fmt.Fprintf(bw, "# Paste each block into the file named above it.\n")
	for _, n := range s.Notes() {
		fmt.Fprintf(bw, "# %s\n", n)
	}
	for _, b := range s.Blocks() {
		how := ""
		if b.Append {
			how = " (add these lines)"
		}
		fmt.Fprintf(bw, "\n# ---- %s%s ----\n", b.File, how)
		for _, l := range b.Lines {
			fmt.Fprintln(bw, l)
		}
	}
	return bw.Flush()
}

// heredoc ends every here-document of the script; no generated line is it.
const heredoc = "LANMIRROR_EOF"

// The lines the script adds to make.conf are kept between these markers.
const (
	beginMark = "# BEGIN lanmirror client-config"
	endMark   = "# END lanmirror client-config"
)

// WriteShell prints a POSIX shell script that writes the blocks below
// ${PORTAGE_CONFIGROOT:-/}: drop-in files into repos.conf/ and binrepos.conf/
// (or appended to them when they are single files without the section), lines
// appended to make.conf (or make.conf/lanmirror.conf when it is a directory)
// between marker lines that a later run replaces, and to mirrors unless
// already there.
func (s Server) WriteShell(w io.Writer) error {
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format+"\n", args...) }
	p("#!/bin/sh")
	p("# Writes the Portage client configuration for the lanmirror server %s.", s.Host)
	p("# Run it as root on the client; PORTAGE_CONFIGROOT selects another root.")
	for _, n := range s.Notes() {
		p("# %s", n)
	}
	p("set -e")
	p(`root="${PORTAGE_CONFIGROOT:-}"`)
	p(`root="${root%%/}"`)
	p(`mkdir -p "$root/etc/portage"`)
	body := func(b Block) {
		for _, l := range b.Lines {
			p("%s", l)
		}
		p("%s", heredoc)
	}
	for _, b := range s.Blocks() {
		p("")
		p("# %s", b.File)
		switch {
		case b.File == MakeConf:
			// Between markers, so that running the script again replaces
			// the block instead of adding another.
			p(`f="$root%s"`, MakeConf)
			p(`if [ -d "$f" ]; then f="$f/lanmirror.conf"; fi`)
			p(`if [ -f "$f" ]; then sed -i '/^%s$/,/^%s$/d' "$f"; fi`, beginMark, endMark)
			p(`cat >> "$f" <<'%s'`, heredoc)
			p("%s", beginMark)
			for _, l := range b.Lines {
				p("%s", l)
			}
			p("%s", endMark)
			p("%s", heredoc)
		case b.Append:
			// One line per entry; add the missing ones.
			p(`f="$root%s"`, b.File)
			p(`touch "$f"`)
			for _, l := range b.Lines {
				if strings.HasPrefix(l, "#") {
					continue
				}
				p(`grep -qxF '%s' "$f" || printf '%%s\n' '%s' >> "$f"`, l, l)
			}
		default:
			dir, file := splitDropIn(b.File)
			p(`d="$root%s"`, dir)
			p(`if [ -f "$d" ]; then`)
			p(`  if grep -q '^\[%s\]' "$d"; then`, b.Section)
			p(`    echo "lanmirror: $d already has a [%s] section: edit it by hand" >&2`, b.Section)
			p(`  else`)
			p(`    cat >> "$d" <<'%s'`, heredoc)
			body(b)
			p(`  fi`)
			p(`else`)
			p(`  mkdir -p "$d"`)
			p(`  cat > "$d/%s" <<'%s'`, file, heredoc)
			body(b)
			p(`fi`)
		}
	}
	return bw.Flush()
}

// splitDropIn splits "/etc/portage/repos.conf/gentoo.conf" into the
// directory and the file name.
func splitDropIn(f string) (string, string) {
	i := strings.LastIndexByte(f, '/')
	return f[:i], f[i+1:]
}
