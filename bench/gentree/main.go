// Command gentree writes a deterministic Gentoo-like ebuild tree (see
// internal/testtree) for benchmarks, such as bench/rsync.sh:
//
//	go run ./bench/gentree -dir /tmp/tree -files 150000
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
}
