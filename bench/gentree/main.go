// Command gentree writes a deterministic Gentoo-like ebuild tree (see
// internal/testtree) for benchmarks, such as bench/rsync.sh:
//
//	go run ./bench/gentree -dir /tmp/tree -files 150000
//
// With -sign-key it also writes GLEP 74 Manifests in the gentoo rsync tree's
// layout (testtree.WriteManifests), the top-level one clear-signed with a
// newly generated OpenPGP key whose public half goes to that file, for
// bench/treeverify.sh.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/lanmirror/lanmirror/internal/testtree"
)

func main() {
	dir := flag.String("dir", "", "directory to write the tree into (created; should be empty)")
	files := flag.Int("files", 150000, "about how many regular files to write")
	seed := flag.Uint64("seed", 1, "seed: the same seed writes the same tree")
	excluded := flag.Bool("portage-excluded", true, "also write distfiles/, local/, packages/ and .git/ (Portage excludes them)")
	signKey := flag.String("sign-key", "", "write signed GLEP 74 Manifests, and the armored public key of the generated signing key to this file")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "gentree: -dir is required")
		os.Exit(2)
	}
	start := time.Now()
	t, err := testtree.Generate(*dir, testtree.Options{Seed: *seed, Files: *files, PortageExcluded: *excluded})
	if err != nil {
		fmt.Fprintln(os.Stderr, "gentree:", err)
		os.Exit(1)
	}
	fmt.Printf("gentree: %s: %d files, %d directories, %d symlinks, %d bytes in %v\n",
		*dir, t.Files, t.Dirs, t.Symlinks, t.Bytes, time.Since(start).Round(time.Millisecond))
	if *signKey != "" {
		if err := sign(*dir, *signKey); err != nil {
			fmt.Fprintln(os.Stderr, "gentree:", err)
			os.Exit(1)
		}
	}
}

// sign writes the Manifests with a new key and saves its public key.
func sign(dir, keyFile string) error {
	start := time.Now()
	key, err := testtree.NewSigningKey("lanmirror bench release key", "bench@example.org", nil)
	if err != nil {
		return err
	}
	if err := testtree.WriteManifests(dir, testtree.ManifestOptions{Key: key, Timestamp: time.Now()}); err != nil {
		return err
	}
	asc, err := testtree.ArmoredPublicKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, asc, 0o644); err != nil {
		return err
	}
	fmt.Printf("gentree: signed Manifests written in %v, public key %s (%X)\n",
		time.Since(start).Round(time.Millisecond), keyFile, key.PrimaryKey.Fingerprint)
	return nil
}
