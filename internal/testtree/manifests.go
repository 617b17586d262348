package testtree

import (
	"bufio"
	"bytes"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/klauspost/compress/gzip"
	"golang.org/x/crypto/blake2b"

	"github.com/lanmirror/lanmirror/internal/gentoo"
)

// ManifestOptions say how WriteManifests writes a tree's GLEP 74 Manifests.
type ManifestOptions struct {
	// Key signs the top-level Manifest and the split Manifests of
	// metadata/glsa and metadata/news (it needs its private key); nil
	// leaves them unsigned.
	Key *openpgp.Entity
	// SignConfig is used for the signatures (signature time and lifetime);
	// nil: defaults.
	SignConfig *packet.Config
	// Timestamp is the TIMESTAMP entry (default: now).
	Timestamp time.Time
}

// Top-level paths the gentoo repository's Manifests IGNORE.
var (
	topIgnores      = []string{"distfiles", "local", "lost+found", "packages"}
	metadataIgnores = []string{"timestamp", "timestamp.chk", "timestamp.commit", "timestamp.x"}
	// splitDirs get a signed Manifest holding a MANIFEST entry for their
	// Manifest.files.gz, as the top-level directory does.
	splitDirs = []string{"metadata/glsa", "metadata/news"}
)

// manifestDir is a directory that gets its own Manifest.
type manifestDir struct {
	rel      string
	name     string // "Manifest" or "Manifest.gz"
	thick    bool   // package directory: EBUILD/MISC/AUX entries, DIST lines kept
	split    bool   // Manifest.files.gz plus a signed Manifest
	ignores  []string
	children map[string]bool // relative paths of sub-Manifest directories
}

// WriteManifests writes GLEP 74 Manifests for the tree in dir in the layout
// of the gentoo rsync tree: a thick Manifest in each package directory
// (existing DIST lines kept), Manifest.gz in each category, in
// metadata/md5-cache and its categories, eclass, licenses, profiles,
// metadata/dtd and metadata/xml-schema, and metadata (IGNOREing the
// timestamp files); metadata/glsa and metadata/news and the top level get a
// Manifest.files.gz and a clear-signed Manifest (MANIFEST and TIMESTAMP
// entries). Entries carry BLAKE2B and SHA512. Symlinks are followed, as
// gemato does; dot files are skipped.
func WriteManifests(dir string, opts ManifestOptions) error {
	if opts.Timestamp.IsZero() {
		opts.Timestamp = time.Now()
	}
	dirs, err := manifestDirs(dir)
	if err != nil {
		return err
	}
	// Deepest first: a Manifest lists the Manifests below it.
	byDepth := map[int][]*manifestDir{}
	maxDepth := 0
	for _, d := range dirs {
		n := depth(d.rel)
		byDepth[n] = append(byDepth[n], d)
		maxDepth = max(maxDepth, n)
	}
	for n := maxDepth; n >= 0; n-- {
		if err := parallel(byDepth[n], func(d *manifestDir) error { return writeManifest(dir, d, opts) }); err != nil {
			return err
		}
	}
	return nil
}

// WriteTopManifest rewrites only the top-level Manifest of a tree written by
// WriteManifests, with a new TIMESTAMP or signature.
func WriteTopManifest(dir string, opts ManifestOptions) error {
	if opts.Timestamp.IsZero() {
		opts.Timestamp = time.Now()
	}
	return writeSplitTop(dir, "", opts)
}

func depth(rel string) int {
	if rel == "" {
		return 0
	}
	return strings.Count(rel, "/") + 1
}

// manifestDirs decides which directories get a Manifest.
func manifestDirs(root string) ([]*manifestDir, error) {
	var out []*manifestDir
	add := func(rel, name string) *manifestDir {
		d := &manifestDir{rel: rel, name: name, children: map[string]bool{}}
		out = append(out, d)
		return d
	}
	exists := func(rel string) bool {
		fi, err := os.Stat(filepath.Join(root, rel))
		return err == nil && fi.IsDir()
	}
	var cats []string
	if b, err := os.ReadFile(filepath.Join(root, "profiles/categories")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			if exists(l) {
				cats = append(cats, l)
			}
		}
	}
	for _, c := range cats {
		add(c, "Manifest.gz")
		ents, err := os.ReadDir(filepath.Join(root, c))
		if err != nil {
			return nil, fmt.Errorf("testtree: manifests: %w", err)
		}
		for _, e := range ents {
			if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
				add(c+"/"+e.Name(), "Manifest").thick = true
			}
		}
		if exists("metadata/md5-cache/" + c) {
			add("metadata/md5-cache/"+c, "Manifest.gz")
		}
	}
	for _, rel := range []string{"metadata/md5-cache", "metadata/dtd", "metadata/xml-schema", "eclass", "licenses", "profiles"} {
		if exists(rel) {
			add(rel, "Manifest.gz")
		}
	}
	for _, rel := range splitDirs {
		if exists(rel) {
			add(rel, "Manifest").split = true
		}
	}
	if exists("metadata") {
		add("metadata", "Manifest.gz").ignores = metadataIgnores
	}
	top := add("", "Manifest")
	top.split = true
	top.ignores = topIgnores
	// Each Manifest lists the Manifests of the nearest directories below it.
	set := map[string]*manifestDir{}
	for _, d := range out {
		set[d.rel] = d
	}
	for _, d := range out {
		if d.rel == "" {
			continue
		}
		for p := path.Dir(d.rel); ; p = path.Dir(p) {
			if p == "." {
				p = ""
			}
			if parent := set[p]; parent != nil {
				parent.children[d.rel] = true
				break
			}
			if p == "" {
				break
			}
		}
	}
	return out, nil
}

// writeManifest writes the Manifest of d.
func writeManifest(root string, d *manifestDir, opts ManifestOptions) error {
	var lines []string
	if d.thick {
		// Keep the DIST and IGNORE lines of the package's own Manifest.
		if b, err := os.ReadFile(filepath.Join(root, d.rel, "Manifest")); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(l, "DIST ") || strings.HasPrefix(l, "IGNORE ") {
					lines = append(lines, l)
				}
			}
		}
	}
	for _, ig := range d.ignores {
		lines = append(lines, "IGNORE "+gentoo.EscapeManifestPath(ig))
	}
	ignored := map[string]bool{}
	for _, ig := range d.ignores {
		ignored[ig] = true
	}
	err := walkFollow(filepath.Join(root, d.rel), "", func(rel string, isDir bool) (bool, error) {
		if ignored[rel] {
			return false, nil
		}
		full := rel
		if d.rel != "" {
			full = d.rel + "/" + rel
		}
		if isDir {
			if d.children[full] {
				sub := subManifestName(root, full)
				l, err := entryLine(root, gentoo.TagManifest, full+"/"+sub, rel+"/"+sub)
				if err != nil {
					return false, err
				}
				lines = append(lines, l)
				return false, nil
			}
			return true, nil
		}
		if !strings.Contains(rel, "/") && strings.HasPrefix(rel, "Manifest") {
			return false, nil
		}
		tag, name := gentoo.TagData, rel
		if d.thick {
			switch {
			case strings.HasPrefix(rel, "files/"):
				tag, name = gentoo.TagAux, strings.TrimPrefix(rel, "files/")
			case strings.HasSuffix(rel, ".ebuild"):
				tag = gentoo.TagEbuild
			case rel == "metadata.xml":
				tag = gentoo.TagMisc
			}
		}
		l, err := entryLine(root, tag, full, name)
		if err != nil {
			return false, err
		}
		lines = append(lines, l)
		return false, nil
	})
	if err != nil {
		return err
	}
	sort.Strings(lines)
	text := []byte(strings.Join(lines, "\n") + "\n")
	if d.split {
		if err := writeCompressed(filepath.Join(root, d.rel, "Manifest.files.gz"), text); err != nil {
			return err
		}
		return writeSplitTop(root, d.rel, opts)
	}
	p := filepath.Join(root, d.rel, d.name)
	if d.name == "Manifest.gz" {
		os.Remove(filepath.Join(root, d.rel, "Manifest"))
		return writeCompressed(p, text)
	}
	if err := os.WriteFile(p, text, 0o644); err != nil {
		return fmt.Errorf("testtree: %w", err)
	}
	return nil
}

// writeSplitTop writes rel/Manifest: a MANIFEST entry for rel/Manifest.files.gz
// and the TIMESTAMP, clear-signed with opts.Key when set.
func writeSplitTop(root, rel string, opts ManifestOptions) error {
	files := "Manifest.files.gz"
	if rel != "" {
		files = rel + "/" + files
	}
	l, err := entryLine(root, gentoo.TagManifest, files, "Manifest.files.gz")
	if err != nil {
		return err
	}
	text := l + "\n" + "TIMESTAMP " + opts.Timestamp.UTC().Format("2006-01-02T15:04:05Z") + "\n"
	out := []byte(text)
	if opts.Key != nil {
		var buf bytes.Buffer
		w, err := clearsign.Encode(&buf, opts.Key.PrivateKey, opts.SignConfig)
		if err != nil {
			return fmt.Errorf("testtree: sign: %w", err)
		}
		if _, err := io.WriteString(w, text); err != nil {
			return fmt.Errorf("testtree: sign: %w", err)
		}
		if err := w.Close(); err != nil {
			return fmt.Errorf("testtree: sign: %w", err)
		}
		out = buf.Bytes()
		if !bytes.HasSuffix(out, []byte("\n")) {
			out = append(out, '\n') // as gpg --clearsign writes it (gemato needs it)
		}
	}
	if err := os.WriteFile(filepath.Join(root, rel, "Manifest"), out, 0o644); err != nil {
		return fmt.Errorf("testtree: %w", err)
	}
	return nil
}

func subManifestName(root, rel string) string {
	if _, err := os.Stat(filepath.Join(root, rel, "Manifest.gz")); err == nil {
		return "Manifest.gz"
	}
	return "Manifest"
}

// walkFollow calls fn for every name below dir (rel paths, sorted, dot
// names skipped), following symlinks; dangling symlinks are skipped. fn
// returns whether to descend into a directory.
func walkFollow(dir, rel string, fn func(rel string, isDir bool) (bool, error)) error {
	return walkFollowSeen(dir, rel, fn, 0)
}

func walkFollowSeen(dir, rel string, fn func(rel string, isDir bool) (bool, error), level int) error {
	if level > 40 {
		return fmt.Errorf("testtree: %s: too deep (symlink loop?)", dir)
	}
	ents, err := os.ReadDir(filepath.Join(dir, rel))
	if err != nil {
		return fmt.Errorf("testtree: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		r := name
		if rel != "" {
			r = rel + "/" + name
		}
		fi, err := os.Stat(filepath.Join(dir, r))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("testtree: %w", err)
		}
		descend, err := fn(r, fi.IsDir())
		if err != nil {
			return err
		}
		if fi.IsDir() && descend {
			if err := walkFollowSeen(dir, r, fn, level+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// entryLine hashes root/full and formats "TAG name size BLAKE2B .. SHA512 ..".
func entryLine(root, tag, full, name string) (string, error) {
	f, err := os.Open(filepath.Join(root, full))
	if err != nil {
		return "", fmt.Errorf("testtree: %w", err)
	}
	defer f.Close()
	b2, _ := blake2b.New512(nil)
	s5 := sha512.New()
	n, err := io.Copy(io.MultiWriter(b2, s5), bufio.NewReaderSize(f, 64<<10))
	if err != nil {
		return "", fmt.Errorf("testtree: %w", err)
	}
	return fmt.Sprintf("%s %s %d BLAKE2B %x SHA512 %x", tag, gentoo.EscapeManifestPath(name), n, sum(b2), sum(s5)), nil
}

func sum(h hash.Hash) []byte { return h.Sum(nil) }

// writeCompressed writes a gzip file with no name and time (as Gentoo's
// infrastructure does, so the same text gives the same bytes).
func writeCompressed(p string, text []byte) error {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(text); err != nil {
		return fmt.Errorf("testtree: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("testtree: %w", err)
	}
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("testtree: %w", err)
	}
	return nil
}

// parallel runs fn on every item with up to GOMAXPROCS goroutines and
// returns the first error.
func parallel[T any](items []T, fn func(T) error) error {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     int
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				mu.Lock()
				if next >= len(items) || firstErr != nil {
					mu.Unlock()
					return
				}
				it := items[next]
				next++
				mu.Unlock()
				if err := fn(it); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}

// NewSigningKey generates an OpenPGP key (Ed25519, fast to make) that can
// sign Manifests; cfg may set its creation time and lifetime.
func NewSigningKey(name, email string, cfg *packet.Config) (*openpgp.Entity, error) {
	if cfg == nil {
		cfg = &packet.Config{}
	}
	c := *cfg
	if c.Algorithm == 0 {
		c.Algorithm = packet.PubKeyAlgoEdDSA
	}
	e, err := openpgp.NewEntity(name, "test key", email, &c)
	if err != nil {
		return nil, fmt.Errorf("testtree: key: %w", err)
	}
	return e, nil
}

// ArmoredPublicKey returns e's public key as an ASCII-armored block, as in
// gentoo-release.asc.
func ArmoredPublicKey(e *openpgp.Entity) ([]byte, error) {
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		return nil, err
	}
	if err := e.Serialize(w); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}
