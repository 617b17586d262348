package treeverify

import (
	"context"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/lanmirror/lanmirror/internal/gentoo"
)

// TopManifest is the name of the top-level Manifest, the root of trust.
const TopManifest = "Manifest"

// Options say what Verify accepts.
type Options struct {
	// Keyring holds the keys that may sign the top-level Manifest. When it
	// is empty no signature is checked (digests and coverage still are);
	// when it is set the top-level Manifest must be clear-signed by one of
	// them, and every signed Manifest is checked.
	Keyring openpgp.EntityList
	// NotBefore refuses a tree whose TIMESTAMP is older (the published
	// tree's TIMESTAMP: no rollback). Zero: not checked.
	NotBefore time.Time
	// MaxAge refuses a tree whose TIMESTAMP is older than Now minus MaxAge
	// (Portage's sync-rsync-verify-max-age). Zero: not checked.
	MaxAge time.Duration
	// Now is the time signatures, key expiry and MaxAge are checked at
	// (default time.Now).
	Now func() time.Time
	// Jobs is the number of workers (default GOMAXPROCS).
	Jobs int
}

// Report describes a verified tree.
type Report struct {
	// Timestamp is the top-level Manifest's TIMESTAMP (zero if it has none).
	Timestamp time.Time
	// Signer describes the key that signed the top-level Manifest; empty
	// when no key ring was given.
	Signer string
	// Manifests, Files and Bytes count what was checked: Manifests loaded
	// (the top-level one included), files hashed (Manifests included) and
	// their bytes.
	Manifests, Files int
	Bytes            int64
	Duration         time.Duration
}

// Problem is one reason a tree is refused.
type Problem struct {
	// Path is the file, relative to the tree (slash-separated).
	Path string
	// Reason says what is wrong with it.
	Reason string
}

func (p Problem) String() string { return p.Path + ": " + p.Reason }

// maxProblems bounds the problems an Error keeps (all are counted).
const maxProblems = 200

// Error is Verify's answer for a tree that fails: the problems found
// (sorted by path, at most maxProblems of them) and their total number.
type Error struct {
	Problems []Problem
	Total    int
}

func (e *Error) Error() string {
	if len(e.Problems) == 1 && e.Total == 1 {
		return e.Problems[0].String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d problems: ", e.Total)
	const shown = 5
	for i, p := range e.Problems {
		if i == shown {
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	if e.Total > shown {
		fmt.Fprintf(&b, "; and %d more", e.Total-min(shown, len(e.Problems)))
	}
	return b.String()
}

// entry is what the Manifests say about one path.
type entry struct {
	tag     string // gentoo.TagData (also for EBUILD, MISC, AUX), TagManifest or TagIgnore
	size    int64
	digests []digest
	from    *string // the Manifest that lists the path
	// checked is the number of digests verified when a sub-Manifest was
	// loaded (a failure is reported then): the walk does not hash it again
	// when all were.
	checked int
	seen    bool // reached by the walk
}

type verifier struct {
	root   string
	opts   Options
	now    time.Time
	signed bool
	pool   *pool

	mu        sync.Mutex
	dirs      map[string]map[string]*entry // directory -> name -> entry
	manifests map[string]bool              // Manifests loaded or queued
	// failed holds the directories of the sub-Manifests that failed: the
	// walk does not enter them (their files would all be "not listed").
	failed    map[string]bool
	problems  []Problem
	total     int
	timestamp time.Time
	signer    string

	nManifests atomic.Int64
	nFiles     atomic.Int64
	nBytes     atomic.Int64
}

// Verify checks the tree in dir against its Manifests, starting from
// dir/Manifest (see the package documentation for what is checked). It
// returns a report when the tree is good, else an *Error listing what is
// wrong, each problem naming the file and why.
func Verify(ctx context.Context, dir string, opts Options) (*Report, error) {
	start := time.Now()
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Jobs <= 0 {
		opts.Jobs = runtime.GOMAXPROCS(0)
	}
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("verify tree: %w", err)
	}
	v := &verifier{
		root:      root,
		opts:      opts,
		now:       opts.Now(),
		signed:    len(opts.Keyring) > 0,
		dirs:      map[string]map[string]*entry{},
		manifests: map[string]bool{TopManifest: true},
		failed:    map[string]bool{},
	}
	top := v.loadTop(ctx)
	if v.total == 0 {
		// The sub-Manifests, then the walk and the entries it did not reach.
		v.pool = newPool()
		v.queueListed(TopManifest, top)
		v.pool.run(ctx, opts.Jobs)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		v.pool = newPool()
		v.pool.push(func(w *worker) { v.walkDir(w, "", nil) })
		v.pool.run(ctx, opts.Jobs)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		v.pool = newPool()
		v.checkUnseen()
		v.pool.run(ctx, opts.Jobs)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	if v.total > 0 {
		sort.Slice(v.problems, func(i, j int) bool {
			if v.problems[i].Path != v.problems[j].Path {
				return v.problems[i].Path < v.problems[j].Path
			}
			return v.problems[i].Reason < v.problems[j].Reason
		})
		return nil, &Error{Problems: v.problems, Total: v.total}
	}
	return &Report{
		Timestamp: v.timestamp,
		Signer:    v.signer,
		Manifests: int(v.nManifests.Load()),
		Files:     int(v.nFiles.Load()),
		Bytes:     v.nBytes.Load(),
		Duration:  time.Since(start),
	}, nil
}

func (v *verifier) problem(p, format string, args ...any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.total++
	if len(v.problems) < maxProblems {
		v.problems = append(v.problems, Problem{Path: p, Reason: fmt.Sprintf(format, args...)})
	}
}

func (v *verifier) abs(rel string) string {
	if rel == "" {
		return v.root
	}
	return v.root + "/" + rel
}

// loadTop reads the top-level Manifest: its signature, TIMESTAMP and
// entries. Any problem here ends the verification.
func (v *verifier) loadTop(ctx context.Context) *gentoo.Manifest {
	if err := ctx.Err(); err != nil {
		v.problem(TopManifest, "%v", err)
		return nil
	}
	data, err := readWhole(v.abs(TopManifest), maxTopManifest)
	if err != nil {
		v.problem(TopManifest, "%v", err)
		return nil
	}
	v.nManifests.Add(1)
	v.nFiles.Add(1)
	v.nBytes.Add(int64(len(data)))
	m, signer, err := v.parse(TopManifest, data, true)
	if err != nil {
		v.problem(TopManifest, "%v", err)
		return nil
	}
	v.signer = signer
	for _, e := range m.Entries {
		if e.Tag == gentoo.TagTimestamp {
			v.timestamp = e.Time
			break
		}
	}
	if !v.opts.NotBefore.IsZero() || v.opts.MaxAge > 0 {
		switch {
		case v.timestamp.IsZero():
			v.problem(TopManifest, "no TIMESTAMP entry, the tree's age cannot be checked")
		case !v.opts.NotBefore.IsZero() && v.timestamp.Before(v.opts.NotBefore):
			v.problem(TopManifest, "TIMESTAMP %s is older than the published tree's %s (rollback refused)",
				v.timestamp.UTC().Format(time.RFC3339), v.opts.NotBefore.UTC().Format(time.RFC3339))
		case v.opts.MaxAge > 0 && v.now.Sub(v.timestamp) > v.opts.MaxAge:
			v.problem(TopManifest, "TIMESTAMP %s is %s old, more than the maximum age %s (stale mirror?)",
				v.timestamp.UTC().Format(time.RFC3339), v.now.Sub(v.timestamp).Round(time.Second), v.opts.MaxAge)
		}
	}
	if v.total > 0 {
		return nil
	}
	v.addEntries(TopManifest, m)
	return m
}

// addEntries merges the entries of the Manifest at mpath into the index.
func (v *verifier) addEntries(mpath string, m *gentoo.Manifest) {
	dir := path.Dir(mpath)
	if dir == "." {
		dir = ""
	}
	from := &mpath
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, me := range m.Entries {
		var e *entry
		p := me.Path
		switch me.Tag {
		case gentoo.TagDist, gentoo.TagTimestamp:
			continue
		case gentoo.TagIgnore:
			e = &entry{tag: gentoo.TagIgnore}
		case gentoo.TagAux:
			p = "files/" + p
			fallthrough
		case gentoo.TagData, gentoo.TagEbuild, gentoo.TagMisc, gentoo.TagManifest:
			tag := gentoo.TagData
			if me.Tag == gentoo.TagManifest {
				tag = gentoo.TagManifest
			}
			e = &entry{tag: tag, size: me.Size}
			var secure bool
			var unknown []string
			for _, h := range me.Hashes {
				k, ok := hashKinds[h.Name]
				if !ok {
					unknown = append(unknown, h.Name)
					continue
				}
				e.digests = append(e.digests, digest{kind: k, hex: h.Hex})
				secure = secure || k.secure()
			}
			full := joinRel(dir, p)
			switch {
			case len(e.digests) == 0:
				v.addProblemLocked(full, "%s lists it with no supported hash (%s)", mpath, strings.Join(unknown, " "))
				continue
			case v.signed && !secure:
				v.addProblemLocked(full, "%s lists it with no secure hash (only MD5/SHA1)", mpath)
				continue
			}
		default:
			v.addProblemLocked(mpath, "unknown entry type %q", me.Tag)
			continue
		}
		e.from = from
		full, ok := cleanRel(dir, p)
		if !ok {
			v.addProblemLocked(mpath, "%s entry with a path outside its directory: %q", me.Tag, p)
			continue
		}
		d, name := path.Split(full)
		d = strings.TrimSuffix(d, "/")
		dm := v.dirs[d]
		if dm == nil {
			dm = map[string]*entry{}
			v.dirs[d] = dm
		}
		old := dm[name]
		if old == nil {
			dm[name] = e
			continue
		}
		if err := merge(old, e); err != nil {
			v.addProblemLocked(full, "%s and %s disagree: %v", *old.from, mpath, err)
		}
	}
}

func (v *verifier) addProblemLocked(p, format string, args ...any) {
	v.total++
	if len(v.problems) < maxProblems {
		v.problems = append(v.problems, Problem{Path: p, Reason: fmt.Sprintf(format, args...)})
	}
}

// merge folds a second entry for the same path into old (gemato's rule:
// IGNORE only with IGNORE, same size, no two different digests of one
// kind).
func merge(old, e *entry) error {
	if (old.tag == gentoo.TagIgnore) != (e.tag == gentoo.TagIgnore) {
		return errors.New("IGNORE and a file entry")
	}
	if old.tag == gentoo.TagIgnore {
		return nil
	}
	if old.size != e.size {
		return fmt.Errorf("size %d and %d", old.size, e.size)
	}
	for _, d := range e.digests {
		found := false
		for _, o := range old.digests {
			if o.kind == d.kind {
				if o.hex != d.hex {
					return fmt.Errorf("two different %s digests", d.kind)
				}
				found = true
			}
		}
		if !found {
			old.digests = append(old.digests, d)
		}
	}
	if e.tag == gentoo.TagManifest {
		old.tag = gentoo.TagManifest
	}
	return nil
}

// joinRel joins a Manifest's directory and an entry path for messages.
func joinRel(dir, p string) string {
	if dir == "" {
		return p
	}
	return dir + "/" + p
}

// cleanRel joins dir and p and refuses absolute paths and paths that leave
// dir.
func cleanRel(dir, p string) (string, bool) {
	if p == "" || strings.HasPrefix(p, "/") || strings.ContainsRune(p, 0) {
		return "", false
	}
	c := path.Clean(p)
	if c == "." || c == ".." || strings.HasPrefix(c, "../") {
		return "", false
	}
	return joinRel(dir, c), true
}

// queueManifest loads the sub-Manifest at rel on the pool unless it is
// already loaded or queued. The caller must not hold v.mu.
func (v *verifier) queueManifest(rel string, e *entry) {
	v.mu.Lock()
	if v.manifests[rel] {
		v.mu.Unlock()
		return
	}
	v.manifests[rel] = true
	size, digests := e.size, append([]digest(nil), e.digests...)
	v.mu.Unlock()
	v.pool.push(func(w *worker) { v.loadSub(w, rel, e, size, digests) })
}

// loadSub checks the sub-Manifest at rel against its entry, then parses it
// and queues the Manifests it lists.
func (v *verifier) loadSub(w *worker, rel string, e *entry, size int64, digests []digest) {
	if size > maxSubManifest {
		v.problem(rel, "size %d in %s is too large for a Manifest", size, *e.from)
		return
	}
	data, ok := v.readChecked(w, rel, size, digests, *e.from)
	v.mu.Lock()
	e.checked = len(digests) // checked, failure reported: the walk skips it
	v.mu.Unlock()
	if !ok {
		v.markFailed(rel)
		return
	}
	v.nManifests.Add(1)
	text, err := decompress(rel, data)
	if err != nil {
		v.problem(rel, "%v", err)
		v.markFailed(rel)
		return
	}
	m, _, err := v.parse(rel, text, false)
	if err != nil {
		v.problem(rel, "%v", err)
		v.markFailed(rel)
		return
	}
	v.addEntries(rel, m)
	v.queueListed(rel, m)
}

// markFailed records that the Manifest at rel could not be used.
func (v *verifier) markFailed(rel string) {
	dir := path.Dir(rel)
	if dir == "." {
		dir = ""
	}
	v.mu.Lock()
	v.failed[dir] = true
	v.mu.Unlock()
}

// queueListed queues the sub-Manifests that the Manifest at mpath lists.
func (v *verifier) queueListed(mpath string, m *gentoo.Manifest) {
	dir := path.Dir(mpath)
	if dir == "." {
		dir = ""
	}
	for _, me := range m.Entries {
		if me.Tag != gentoo.TagManifest {
			continue
		}
		full, ok := cleanRel(dir, me.Path)
		if !ok {
			continue // reported by addEntries
		}
		d, name := path.Split(full)
		v.mu.Lock()
		se := v.dirs[strings.TrimSuffix(d, "/")][name]
		v.mu.Unlock()
		if se != nil && se.tag == gentoo.TagManifest {
			v.queueManifest(full, se)
		}
	}
}
