package evict

import (
	"fmt"
	"io"
	"os"

	"github.com/lanmirror/lanmirror/internal/gentoo"
	"github.com/lanmirror/lanmirror/internal/progress"
)

// ReferencedBy turns a DIST index into the policy's Referenced test. An
// index without any DIST entry is refused: it would make every cached file
// unreferenced (a wrong --tree must not empty the cache).
//
// A tree that is gone by now (a snapshot pruned while it was read) is
// refused too: its index may be partial.
func ReferencedBy(idx *gentoo.DistIndex) (func(string) bool, error) {
	if idx.Len() == 0 {
		return nil, fmt.Errorf("tree %s has no DIST entries; refusing to treat every cached file as unreferenced", idx.Root())
	}
	if _, err := os.Stat(idx.Root()); err != nil {
		return nil, fmt.Errorf("tree %s vanished while it was indexed; refusing to use a partial index: %w", idx.Root(), err)
	}
	return idx.Has, nil
}

// Report writes one line per removed file and a summary.
func Report(w io.Writer, res Result, dryRun bool) {
	verb := "removed"
	if dryRun {
		verb = "would remove"
	}
	for _, v := range res.Victims {
		used := "never"
		if !v.LastUse().IsZero() {
			used = v.LastUse().UTC().Format("2006-01-02 15:04")
		}
		served := "last served"
		if v.LastServed.IsZero() {
			served = "never served, modified"
		}
		fmt.Fprintf(w, "%s %s (%s, %s; %s %s)\n", verb, v.Name, progress.FormatBytes(v.Size), v.Reason, served, used)
	}
	if dryRun {
		fmt.Fprintf(w, "would remove %d of %d files, freeing %s (cache %s -> %s)\n",
			len(res.Victims), res.Files, progress.FormatBytes(res.Freed()), progress.FormatBytes(res.Before), progress.FormatBytes(res.After))
		return
	}
	fmt.Fprintf(w, "removed %d of %d files, freed %s (cache %s -> %s)\n",
		res.Removed, res.Files, progress.FormatBytes(res.RemovedBytes), progress.FormatBytes(res.Before), progress.FormatBytes(res.Before-res.RemovedBytes))
	for _, err := range res.Errors {
		fmt.Fprintf(w, "error: %v\n", err)
	}
}
