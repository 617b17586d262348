// Package distimport brings the files of an existing DISTDIR into the
// distfiles cache, verified against the tree's Manifests (lanmirror
// import, repcacheman's job).
package distimport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/lanmirror/lanmirror/internal/distcache"
	"github.com/lanmirror/lanmirror/internal/gentoo"
	"github.com/lanmirror/lanmirror/internal/progress"
	"golang.org/x/sync/errgroup"
)

// Options are the settings of an import.
type Options struct {
	DataDir string // the cache's data directory
	Tree    string // ebuild repository verifying the files; "" for none
	Move    bool   // remove each source file once it is in the cache
	DryRun  bool   // report, change nothing
	Unknown bool   // also import files no DIST entry knows (unverified)
	Jobs    int    // files verified at once
}

// importOutcome is what happened to one file.
type importOutcome int

const (
	outImported importOutcome = iota
	outCached
	outCorrupt
	outUnknown
	outFailed
	nOutcomes
)

var outcomeLabel = [nOutcomes]string{"import", "cached", "corrupt", "unknown", "failed"}

// Summary counts outcomes.
type Summary struct {
	count    [nOutcomes]int
	bytes    [nOutcomes]int64
	Examined int // files looked at
	Failed   int // files that could not be read or stored
}

type importLine struct {
	outcome importOutcome
	name    string
	detail  string
}

// Run imports the files of distdir and writes the per-file report and the
// summary to out; the progress bar goes to errw when it is a terminal.
func Run(ctx context.Context, o Options, distdir string, out, errw io.Writer, log *slog.Logger) (Summary, error) {
	var sum Summary
	ents, err := os.ReadDir(distdir)
	if err != nil {
		return sum, fmt.Errorf("import: %w", err)
	}
	var idx *gentoo.DistIndex
	if o.Tree != "" {
		if idx, err = gentoo.LoadDistIndex(ctx, o.Tree, log); err != nil {
			return sum, fmt.Errorf("import: %w", err)
		}
	} else if !o.Unknown {
		return sum, errors.New("import: no tree to verify against: give --tree (or --unknown to import unverified)")
	}
	type job struct {
		name string
		fi   fs.FileInfo
	}
	var jobs []job
	var total int64
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() || ignoredDistdirName(n) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		jobs = append(jobs, job{n, fi})
		total += fi.Size()
	}
	if !o.DryRun {
		if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
			return sum, fmt.Errorf("import: %w", err)
		}
	}
	st, err := distcache.OpenStore(o.DataDir, log)
	if err != nil {
		return sum, fmt.Errorf("import: %w", err)
	}
	defer st.Close()

	bar := progress.New(errw, total, "verifying", true)
	im := &importer{o: o, st: st, idx: idx, dir: distdir, bar: bar}
	var mu sync.Mutex
	var lines []importLine
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, o.Jobs))
	for _, j := range jobs {
		g.Go(func() error {
			if gctx.Err() != nil {
				return gctx.Err()
			}
			oc, detail, read := im.one(j.name, j.fi)
			mu.Lock()
			sum.count[oc]++
			sum.bytes[oc] += j.fi.Size()
			sum.Examined++
			if oc == outFailed {
				sum.Failed++
			}
			lines = append(lines, importLine{oc, j.name, detail})
			mu.Unlock()
			bar.Add(j.fi.Size() - read)
			return nil
		})
	}
	werr := g.Wait()
	bar.Finish()
	if werr == nil {
		werr = ctx.Err()
	}

	slices.SortFunc(lines, func(a, b importLine) int {
		if a.outcome != b.outcome {
			return int(a.outcome) - int(b.outcome)
		}
		return strings.Compare(a.name, b.name)
	})
	for _, l := range lines {
		if l.outcome == outCached || (l.outcome == outImported && !o.DryRun && l.detail == "") {
			continue // the quiet cases; counted in the summary
		}
		label := outcomeLabel[l.outcome]
		if l.outcome == outImported && !o.DryRun {
			label = "imported"
		}
		if l.detail != "" {
			fmt.Fprintf(out, "%-8s %s: %s\n", label, l.name, l.detail)
		} else {
			fmt.Fprintf(out, "%-8s %s\n", label, l.name)
		}
	}
	verb := "imported"
	if o.DryRun {
		verb = "would import"
	}
	fmt.Fprintf(out, "%s %d (%s), already cached %d (%s), corrupt %d (%s), unknown %d (%s), failed %d\n",
		verb, sum.count[outImported], progress.FormatBytes(sum.bytes[outImported]),
		sum.count[outCached], progress.FormatBytes(sum.bytes[outCached]),
		sum.count[outCorrupt], progress.FormatBytes(sum.bytes[outCorrupt]),
		sum.count[outUnknown], progress.FormatBytes(sum.bytes[outUnknown]),
		sum.count[outFailed])
	if werr != nil {
		return sum, fmt.Errorf("import: %w", werr)
	}
	return sum, nil
}

// ignoredDistdirName reports Portage's partial downloads, failed downloads
// and dot-files, which are never imported.
func ignoredDistdirName(n string) bool {
	return strings.HasPrefix(n, ".") || strings.HasSuffix(n, ".__download__") || strings.Contains(n, "._checksum_failure_.")
}

// importer handles one file at a time; it is safe for concurrent use.
type importer struct {
	o   Options
	st  *distcache.Store
	idx *gentoo.DistIndex
	dir string
	bar *progress.Bar
}

// one decides and, unless dry-run, does what happens to the file name. read
// is how many of its bytes were already counted on the progress bar.
func (im *importer) one(name string, fi fs.FileInfo) (oc importOutcome, detail string, read int64) {
	src := filepath.Join(im.dir, name)
	key := distcache.DistfilesPrefix + name
	if err := distcache.CheckKey(key); err != nil {
		return outUnknown, "name not acceptable as a cache key", 0
	}
	d, known := im.idx.Lookup(name)
	cached, cerr := im.st.Stat(key)
	haveCached := cerr == nil && cached.Mode().IsRegular()

	if !known {
		if !im.o.Unknown {
			return outUnknown, "", 0
		}
		if haveCached {
			return outCached, "", 0
		}
		oc, detail = im.add(key, src, "unverified")
		return oc, detail, 0
	}
	if haveCached && os.SameFile(fi, cached) {
		// Already linked into the cache (a previous import).
		oc, detail = im.done(outCached, src, "")
		return oc, detail, 0
	}
	read, err := im.verify(src, d)
	if err != nil {
		var me *gentoo.MismatchError
		if errors.As(err, &me) {
			return outCorrupt, strings.TrimPrefix(me.Error(), me.Name+": "), read
		}
		return outFailed, err.Error(), read
	}
	if haveCached {
		p, err := im.st.Path(key)
		if err == nil && gentoo.VerifyFile(p, d) == nil {
			oc, detail = im.done(outCached, src, "")
			return oc, detail, read
		}
		oc, detail = im.add(key, src, "replaces a cached copy that does not match the Manifest")
		return oc, detail, read
	}
	oc, detail = im.add(key, src, "")
	return oc, detail, read
}

// verify checks the file at path against d like gentoo.VerifyFile, moving
// the progress bar as it reads; read is the number of bytes read.
func (im *importer) verify(path string, d gentoo.Dist) (read int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if fi.Size() != d.Size {
		return 0, &gentoo.MismatchError{Name: d.Name, What: "size", Want: strconv.FormatInt(d.Size, 10), Got: strconv.FormatInt(fi.Size(), 10)}
	}
	g := gentoo.NewDigester()
	n, err := io.Copy(io.MultiWriter(g, im.bar), f)
	if err != nil {
		return n, fmt.Errorf("read %s: %w", path, err)
	}
	return n, g.Check(d)
}

// add puts src into the store (unless dry-run).
func (im *importer) add(key, src, detail string) (importOutcome, string) {
	if im.o.DryRun {
		return outImported, detail
	}
	if err := im.st.Add(key, src, im.o.Move); err != nil {
		return outFailed, err.Error()
	}
	return outImported, detail
}

// done finishes a file the cache already has: with --move its source is
// removed (the cache holds the same verified content).
func (im *importer) done(oc importOutcome, src, detail string) (importOutcome, string) {
	if im.o.Move && !im.o.DryRun {
		if err := os.Remove(src); err != nil {
			return outFailed, fmt.Sprintf("already cached, but removing the source failed: %v", err)
		}
	}
	return oc, detail
}
