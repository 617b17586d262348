package testtree

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Changes lists what Mutate did (paths slash-separated, relative to the root).
type Changes struct {
	// Modified files kept their size but some bytes in the middle changed.
	Modified []string
	// Appended files grew at the end.
	Appended []string
	// Truncated files lost their tail.
	Truncated []string
	// Added regular files are new (some in a new package directory).
	Added []string
	// Removed lists removed regular files and symlinks.
	Removed []string
	// RemovedDirs lists directories removed with everything in them.
	RemovedDirs []string
	// Chmodded files changed mode only (no data to transfer).
	Chmodded []string
	// Relinked symlinks point somewhere else now.
	Relinked []string
	// FileToDir is a regular file replaced by a directory holding one file;
	// DirToFile is a non-empty directory replaced by a regular file.
	FileToDir, DirToFile string
	// Transfers is how many regular files a receiver that compares size and
	// mtime must fetch to catch up (counted by rsync --stats as "Number of
	// regular files transferred").
	Transfers int
}

// Mutate changes a tree written by Generate the way a day of commits does:
// files modified in place (same size), appended, truncated, added and
// removed, a package removed and one added, a mode change, a symlink moved,
// a file turned into a directory and a directory into a file, the large
// file changed in the middle and at the end, and a new timestamp.chk. Every
// changed file gets a new mtime. Files are replaced by rename, as rsync and
// git update trees, so every directory whose entries changed gets a new
// mtime too. The same tree and seed give the same
// changes. The top-level directories Portage excludes are left alone.
func Mutate(dir string, seed uint64) (*Changes, error) {
	m := &mutator{root: dir, rng: newRand(seed, 2), ch: &Changes{}}
	if err := m.scan(); err != nil {
		return nil, err
	}
	if err := m.run(); err != nil {
		return nil, err
	}
	return m.ch, nil
}

// mutator holds the state of one Mutate call.
type mutator struct {
	root  string
	rng   *rnd
	ch    *Changes
	files []string // candidate regular files, sorted
	links []string
	dirs  []string // files/ directories, candidates for DirToFile
	used  map[string]bool
	// touched lists directories whose entries changed; they get a
	// deterministic mtime at the end.
	touched map[string]bool
}

// scan lists the candidates.
func (m *mutator) scan() error {
	m.used = map[string]bool{TimestampFile: true, BigFile: true}
	m.touched = map[string]bool{}
	return filepath.WalkDir(m.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(m.root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if d.IsDir() {
			if slices.Contains(PortageExcluded, rel) {
				return filepath.SkipDir
			}
			if path.Base(rel) == "files" && strings.Count(rel, "/") == 2 {
				m.dirs = append(m.dirs, rel)
			}
			return nil
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			m.links = append(m.links, rel)
		case d.Type().IsRegular() && !m.used[rel]:
			m.files = append(m.files, rel)
		}
		return nil
	})
}

// pick returns up to n unused regular files (at least minSize bytes long).
func (m *mutator) pick(n int, minSize int64) []string {
	var out []string
	for tries := 0; len(out) < n && tries < 50*n+100 && len(m.files) > 0; tries++ {
		rel := m.files[m.rng.intn(len(m.files))]
		if m.used[rel] || m.under(rel) {
			continue
		}
		info, err := os.Stat(m.abs(rel))
		if err != nil || info.Size() < minSize {
			continue
		}
		m.used[rel] = true
		out = append(out, rel)
	}
	return out
}

// under reports whether rel lies below a directory Mutate replaces or removes.
func (m *mutator) under(rel string) bool {
	for _, d := range m.ch.RemovedDirs {
		if strings.HasPrefix(rel, d+"/") {
			return true
		}
	}
	return m.ch.DirToFile != "" && strings.HasPrefix(rel, m.ch.DirToFile+"/")
}

func (m *mutator) abs(rel string) string { return filepath.Join(m.root, filepath.FromSlash(rel)) }

// atLeast returns n percent of the candidate files, at least min.
func (m *mutator) atLeast(permille, min int) int {
	n := len(m.files) * permille / 1000
	if n < min {
		return min
	}
	return n
}

// run applies the changes.
func (m *mutator) run() error {
	// Structural changes first, so later picks avoid what they remove.
	if len(m.dirs) > 0 {
		d := m.dirs[m.rng.intn(len(m.dirs))]
		m.ch.DirToFile = d
		if err := os.RemoveAll(m.abs(d)); err != nil {
			return fmt.Errorf("testtree: remove %s: %w", d, err)
		}
		m.changed(d)
		if err := m.write(d, m.text(300, 2000), 0o644); err != nil {
			return err
		}
		m.ch.Transfers++
	}
	if pkg := m.removablePackage(); pkg != "" {
		if err := os.RemoveAll(m.abs(pkg)); err != nil {
			return fmt.Errorf("testtree: remove %s: %w", pkg, err)
		}
		m.changed(pkg)
		m.ch.RemovedDirs = append(m.ch.RemovedDirs, pkg)
	}
	for _, rel := range m.pick(1, 0) {
		if err := os.Remove(m.abs(rel)); err != nil {
			return fmt.Errorf("testtree: remove %s: %w", rel, err)
		}
		if err := m.write(rel+"/moved-in", m.text(100, 900), 0o644); err != nil {
			return err
		}
		m.ch.FileToDir = rel
		m.ch.Transfers++
	}
	for _, rel := range m.pick(m.atLeast(10, 3), 64) {
		if err := m.modify(rel); err != nil {
			return err
		}
		m.ch.Modified = append(m.ch.Modified, rel)
	}
	for _, rel := range m.pick(m.atLeast(10, 3), 0) {
		if err := m.appendTo(rel, m.text(10, 3000)); err != nil {
			return err
		}
		m.ch.Appended = append(m.ch.Appended, rel)
	}
	for _, rel := range m.pick(m.atLeast(5, 1), 32) {
		if err := m.truncate(rel); err != nil {
			return err
		}
		m.ch.Truncated = append(m.ch.Truncated, rel)
	}
	for _, rel := range m.pick(m.atLeast(5, 2), 0) {
		if err := os.Remove(m.abs(rel)); err != nil {
			return fmt.Errorf("testtree: remove %s: %w", rel, err)
		}
		m.changed(rel)
		m.ch.Removed = append(m.ch.Removed, rel)
	}
	for _, rel := range m.pick(2, 0) {
		info, err := os.Stat(m.abs(rel))
		if err != nil {
			return fmt.Errorf("testtree: %w", err)
		}
		mode := os.FileMode(0o755)
		if info.Mode().Perm() == 0o755 {
			mode = 0o644
		}
		data, err := os.ReadFile(m.abs(rel))
		if err != nil {
			return fmt.Errorf("testtree: %w", err)
		}
		if err := m.replace(rel, data, mode, info.ModTime()); err != nil {
			return err
		}
		m.ch.Chmodded = append(m.ch.Chmodded, rel)
	}
	if err := m.relink(); err != nil {
		return err
	}
	if err := m.addFiles(); err != nil {
		return err
	}
	if err := m.special(); err != nil {
		return err
	}
	m.ch.Transfers += len(m.ch.Modified) + len(m.ch.Appended) + len(m.ch.Truncated) + len(m.ch.Added)
	return m.touchDirs()
}

// changed records that rel was created, removed or replaced: its parent
// directories changed.
func (m *mutator) changed(rel string) {
	for d := path.Dir(rel); d != "."; d = path.Dir(d) {
		m.touched[d] = true
	}
	m.touched["."] = true
}

// touchDirs gives every changed directory a deterministic mtime, deepest
// first (changing a directory's mtime does not change its parent's).
func (m *mutator) touchDirs() error {
	dirs := make([]string, 0, len(m.touched))
	for d := range m.touched {
		dirs = append(dirs, d)
	}
	slices.Sort(dirs)
	slices.Reverse(dirs)
	for _, d := range dirs {
		if info, err := os.Lstat(m.abs(d)); err != nil || !info.IsDir() {
			continue // removed, or now a file
		}
		if err := m.touch(d); err != nil {
			return err
		}
	}
	return nil
}

// removablePackage returns a package directory (cat/pkg) to remove, or "".
func (m *mutator) removablePackage() string {
	for tries := 0; tries < 100 && len(m.files) > 0; tries++ {
		rel := m.files[m.rng.intn(len(m.files))]
		parts := strings.Split(rel, "/")
		if len(parts) == 3 && strings.HasSuffix(rel, ".ebuild") {
			pkg := parts[0] + "/" + parts[1]
			if m.ch.DirToFile != "" && strings.HasPrefix(m.ch.DirToFile, pkg+"/") {
				continue
			}
			return pkg
		}
	}
	return ""
}

// relink points one symlink elsewhere (inside the tree).
func (m *mutator) relink() error {
	for _, l := range m.links {
		if l == OutsideLink || l == AbsoluteLink || m.under(l) {
			continue
		}
		if err := os.Remove(m.abs(l)); err != nil {
			return fmt.Errorf("testtree: relink %s: %w", l, err)
		}
		if err := os.Symlink("relinked-target", m.abs(l)); err != nil {
			return fmt.Errorf("testtree: relink %s: %w", l, err)
		}
		m.changed(l)
		m.ch.Relinked = append(m.ch.Relinked, l)
		return nil
	}
	return nil
}

// addFiles adds files next to existing ones and a new package.
func (m *mutator) addFiles() error {
	n := m.atLeast(10, 3)
	for i := 0; i < n && len(m.files) > 0; i++ {
		base := m.files[m.rng.intn(len(m.files))]
		if m.under(base) || base == m.ch.FileToDir || slices.Contains(m.ch.Removed, base) {
			continue
		}
		rel := path.Dir(base) + fmt.Sprintf("/added-%d.txt", i)
		if err := m.write(rel, m.text(0, 4000), 0o644); err != nil {
			return err
		}
		m.ch.Added = append(m.ch.Added, rel)
	}
	pkg := fmt.Sprintf("app-misc/brand-new-%d", m.rng.intn(1000))
	for _, f := range []string{"brand-new-1.0.ebuild", "Manifest", "metadata.xml", "files/fix.patch"} {
		rel := pkg + "/" + f
		if err := m.write(rel, m.text(100, 3000), 0o644); err != nil {
			return err
		}
		m.ch.Added = append(m.ch.Added, rel)
	}
	return nil
}

// special changes the large file (middle and end) and timestamp.chk.
func (m *mutator) special() error {
	if data, err := os.ReadFile(m.abs(BigFile)); err == nil {
		copy(data[len(data)/3:], "--- changed in the middle by testtree.Mutate ---")
		if err := m.rewrite(BigFile, append(data, m.text(5000, 20000)...)); err != nil {
			return err
		}
		m.ch.Appended = append(m.ch.Appended, BigFile)
	}
	ts := time.Unix(baseTime+86400*400+int64(m.rng.intn(86400)), 0).UTC()
	if err := m.write(TimestampFile, []byte(ts.Format("Mon, 02 Jan 2006 15:04:05 +0000")+"\n"), 0o644); err != nil {
		return err
	}
	m.ch.Modified = append(m.ch.Modified, TimestampFile)
	return nil
}

// modify changes a few bytes in the middle of rel, keeping its size.
func (m *mutator) modify(rel string) error {
	data, err := os.ReadFile(m.abs(rel))
	if err != nil {
		return fmt.Errorf("testtree: %w", err)
	}
	start := len(data) / 2
	for i := start; i < start+16 && i < len(data); i++ {
		data[i] ^= 0x01
	}
	return m.rewrite(rel, data)
}

// appendTo adds extra at the end of rel.
func (m *mutator) appendTo(rel string, extra []byte) error {
	data, err := os.ReadFile(m.abs(rel))
	if err != nil {
		return fmt.Errorf("testtree: %w", err)
	}
	return m.rewrite(rel, append(data, extra...))
}

// truncate cuts the last quarter of rel.
func (m *mutator) truncate(rel string) error {
	data, err := os.ReadFile(m.abs(rel))
	if err != nil {
		return fmt.Errorf("testtree: %w", err)
	}
	return m.rewrite(rel, data[:len(data)*3/4])
}

// rewrite replaces rel with new content (mode kept) and a new mtime.
func (m *mutator) rewrite(rel string, data []byte) error {
	info, err := os.Stat(m.abs(rel))
	if err != nil {
		return fmt.Errorf("testtree: %w", err)
	}
	if err := m.replace(rel, data, info.Mode().Perm(), time.Time{}); err != nil {
		return err
	}
	return m.touch(rel)
}

// replace writes data to a temporary file next to rel and renames it over
// rel, the way rsync, git and editors update files (so the directory
// changes too). A zero mtime leaves the new file's time as it is.
func (m *mutator) replace(rel string, data []byte, mode os.FileMode, mtime time.Time) error {
	tmp := m.abs(path.Dir(rel) + "/.testtree.tmp")
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("testtree: replace %s: %w", rel, err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fmt.Errorf("testtree: replace %s: %w", rel, err)
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(tmp, mtime, mtime); err != nil {
			return fmt.Errorf("testtree: replace %s: %w", rel, err)
		}
	}
	if err := os.Rename(tmp, m.abs(rel)); err != nil {
		return fmt.Errorf("testtree: replace %s: %w", rel, err)
	}
	m.changed(rel)
	return nil
}

// write creates (or replaces) rel with its parents and gives it a new mtime.
func (m *mutator) write(rel string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(m.abs(rel)), 0o755); err != nil {
		return fmt.Errorf("testtree: mkdir for %s: %w", rel, err)
	}
	if err := os.WriteFile(m.abs(rel), data, mode); err != nil {
		return fmt.Errorf("testtree: write %s: %w", rel, err)
	}
	m.changed(rel)
	return m.touch(rel)
}

// touch sets a new mtime, well after every time Generate uses.
func (m *mutator) touch(rel string) error {
	mt := time.Unix(baseTime+86400*400+int64(m.rng.intn(86400)), int64(m.rng.intn(1_000_000_000)))
	if err := os.Chtimes(m.abs(rel), mt, mt); err != nil {
		return fmt.Errorf("testtree: chtimes %s: %w", rel, err)
	}
	return nil
}

// text returns generated text (shares the generator's word lists).
func (m *mutator) text(lo, hi int) []byte {
	g := &gen{rng: m.rng}
	return g.text(lo, hi)
}
