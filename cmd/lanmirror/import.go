package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lanmirror/lanmirror/internal/distcache"
	"github.com/lanmirror/lanmirror/internal/gentoo"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	"golang.org/x/term"
)

// importOptions are the settings of lanmirror import.
type importOptions struct {
	dataDir string
	tree    string
	move    bool
	dryRun  bool
	unknown bool
	jobs    int
}

func newImportCmd() *cobra.Command {
	o := importOptions{}
	sf := newSettingsFlags()
	cmd := &cobra.Command{
		Use:   "import DISTDIR",
		Short: "bring the files of an existing DISTDIR into the distfiles cache, verified against the Manifests",
		Long: `import does repcacheman's job: every regular file in DISTDIR whose name has a
DIST entry in the tree and whose size, BLAKE2B and SHA512 match it enters the
cache (a hard link when DISTDIR is on the same filesystem, else a copy).

  corrupt  the file does not match its DIST entry: listed, left alone
  unknown  no DIST entry has its name: listed, left alone (--unknown imports
           it unverified; the cache then serves it as is)
  cached   the cache already holds a verified copy: skipped

Portage's partial downloads (*.__download__, *._checksum_failure_*) and
dot-files are ignored. --move removes each imported (or already cached) source
file. --dry-run reports what would happen and changes nothing.

The tree is --tree, else DATA/tree/current when lanmirror mirrors one.`,
		Example: `  lanmirror import /var/cache/distfiles --data /var/cache/lanmirror --tree /var/db/repos/gentoo
  lanmirror import /var/cache/distfiles --tree /var/db/repos/gentoo --move`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := sf.settings()
			if err != nil {
				return err
			}
			o.dataDir, o.tree = cfg.DataDir, cfg.Tree
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			sum, err := runImport(cmd.Context(), o, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr(), log)
			if err != nil {
				return err
			}
			if sum.failed > 0 && sum.failed == sum.examined {
				return fmt.Errorf("import: none of the %d files could be read or stored", sum.failed)
			}
			return nil
		},
	}
	sf.on(cmd.Flags())
	sf.storeFlags()
	sf.treeFlags()
	f := cmd.Flags()
	f.BoolVar(&o.move, "move", false, "remove each source file once it is in the cache")
	f.BoolVar(&o.dryRun, "dry-run", false, "report what would be done, change nothing")
	f.BoolVar(&o.unknown, "unknown", false, "also import files no DIST entry knows (unverified)")
	f.IntVarP(&o.jobs, "jobs", "j", runtime.GOMAXPROCS(0), "files verified at once")
	return cmd
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

// importSummary counts outcomes.
type importSummary struct {
	count    [nOutcomes]int
	bytes    [nOutcomes]int64
	examined int
	failed   int
}

type importLine struct {
	outcome importOutcome
	name    string
	detail  string
}

// runImport imports the files of distdir and writes the per-file report
// and the summary to out; the progress bar goes to errw when it is a
// terminal.
func runImport(ctx context.Context, o importOptions, distdir string, out, errw io.Writer, log *slog.Logger) (importSummary, error) {
	var sum importSummary
	ents, err := os.ReadDir(distdir)
	if err != nil {
		return sum, fmt.Errorf("import: %w", err)
	}
	tree := treePath(o.dataDir, o.tree)
	var idx *gentoo.DistIndex
	if tree != "" {
		if idx, err = loadDistIndex(ctx, tree, log); err != nil {
			return sum, fmt.Errorf("import: %w", err)
		}
	} else if !o.unknown {
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
	if !o.dryRun {
		if err := os.MkdirAll(o.dataDir, 0o755); err != nil {
			return sum, fmt.Errorf("import: %w", err)
		}
	}
	st, err := distcache.OpenStore(o.dataDir, log)
	if err != nil {
		return sum, fmt.Errorf("import: %w", err)
	}
	defer st.Close()

	bar := newProgress(errw, total, "verifying", true)
	im := &importer{o: o, st: st, idx: idx, dir: distdir, bar: bar}
	var mu sync.Mutex
	var lines []importLine
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, o.jobs))
	for _, j := range jobs {
		g.Go(func() error {
			if gctx.Err() != nil {
				return gctx.Err()
			}
			oc, detail, read := im.one(j.name, j.fi)
			mu.Lock()
			sum.count[oc]++
			sum.bytes[oc] += j.fi.Size()
			sum.examined++
			if oc == outFailed {
				sum.failed++
			}
			lines = append(lines, importLine{oc, j.name, detail})
			mu.Unlock()
			bar.add(j.fi.Size() - read)
			return nil
		})
	}
	werr := g.Wait()
	bar.finish()
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
		if l.outcome == outCached || (l.outcome == outImported && !o.dryRun && l.detail == "") {
			continue // the quiet cases; counted in the summary
		}
		label := outcomeLabel[l.outcome]
		if l.outcome == outImported && !o.dryRun {
			label = "imported"
		}
		if l.detail != "" {
			fmt.Fprintf(out, "%-8s %s: %s\n", label, l.name, l.detail)
		} else {
			fmt.Fprintf(out, "%-8s %s\n", label, l.name)
		}
	}
	verb := "imported"
	if o.dryRun {
		verb = "would import"
	}
	fmt.Fprintf(out, "%s %d (%s), already cached %d (%s), corrupt %d (%s), unknown %d (%s), failed %d\n",
		verb, sum.count[outImported], formatBytes(sum.bytes[outImported]),
		sum.count[outCached], formatBytes(sum.bytes[outCached]),
		sum.count[outCorrupt], formatBytes(sum.bytes[outCorrupt]),
		sum.count[outUnknown], formatBytes(sum.bytes[outUnknown]),
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
	o   importOptions
	st  *distcache.Store
	idx *gentoo.DistIndex
	dir string
	bar *progress
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
		if !im.o.unknown {
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
	if im.o.dryRun {
		return outImported, detail
	}
	if err := im.st.Add(key, src, im.o.move); err != nil {
		return outFailed, err.Error()
	}
	return outImported, detail
}

// done finishes a file the cache already has: with --move its source is
// removed (the cache holds the same verified content).
func (im *importer) done(oc importOutcome, src, detail string) (importOutcome, string) {
	if im.o.move && !im.o.dryRun {
		if err := os.Remove(src); err != nil {
			return outFailed, fmt.Sprintf("already cached, but removing the source failed: %v", err)
		}
	}
	return oc, detail
}

// progress is a byte progress bar on a terminal, nothing otherwise.
type progress struct{ bar *progressbar.ProgressBar }

// newProgress shows a bar on w only when w is a terminal; total counts
// bytes when bytes is set, else items.
func newProgress(w io.Writer, total int64, desc string, bytes bool) *progress {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return &progress{}
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionClearOnFinish(),
	}
	if bytes {
		opts = append(opts, progressbar.OptionShowBytes(true), progressbar.OptionUseIECUnits(true))
	} else {
		opts = append(opts, progressbar.OptionShowCount())
	}
	return &progress{bar: progressbar.NewOptions64(total, opts...)}
}

// Write counts len(b) bytes, so the bar can sit in an io.MultiWriter.
func (p *progress) Write(b []byte) (int, error) {
	p.add(int64(len(b)))
	return len(b), nil
}

func (p *progress) add(n int64) {
	if p.bar != nil {
		p.bar.Add64(n)
	}
}

func (p *progress) finish() {
	if p.bar != nil {
		p.bar.Finish()
	}
}

// formatBytes writes n with a binary unit (1.5 MiB).
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
