package testtree

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// digest summarises a tree: one line per entry with type, mode, size,
// mtime, symlink target and content hash.
func digest(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%v %d", info.Mode(), info.Size())
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			line += " -> " + target
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %d %x", info.ModTime().UnixNano(), sha256.Sum256(data))
		case rel != ".":
			line += fmt.Sprintf(" %d", info.ModTime().UnixNano())
		}
		out[filepath.ToSlash(rel)] = line
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestGenerateDeterministic(t *testing.T) {
	a, b, c := t.TempDir(), t.TempDir(), t.TempDir()
	opts := Options{Seed: 42, Files: 300, BigFile: 1<<20 + 12345, PortageExcluded: true}
	ta, err := Generate(a, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(b, opts); err != nil {
		t.Fatal(err)
	}
	opts.Seed = 43
	if _, err := Generate(c, opts); err != nil {
		t.Fatal(err)
	}
	da, db, dc := digest(t, a), digest(t, b), digest(t, c)
	if len(da) != len(db) {
		t.Fatalf("same seed: %d vs %d entries", len(da), len(db))
	}
	for k, v := range da {
		if db[k] != v {
			t.Errorf("same seed, %s differs: %q vs %q", k, v, db[k])
		}
	}
	same := 0
	for k, v := range da {
		if dc[k] == v {
			same++
		}
	}
	if same > len(da)/2 {
		t.Errorf("different seeds give %d of %d identical entries", same, len(da))
	}
	if ta.Files < 300 || ta.Files > 400 {
		t.Errorf("Files = %d, want about 300", ta.Files)
	}
	if ta.Dirs < 20 || ta.Symlinks < 5 || ta.Bytes < 1<<20 {
		t.Errorf("tree too small: %+v", ta)
	}
}

func TestGenerateSpecialEntries(t *testing.T) {
	root := t.TempDir()
	if _, err := Generate(root, Options{Seed: 1, Files: 300, PortageExcluded: true}); err != nil {
		t.Fatal(err)
	}
	mode := func(rel string) fs.FileMode {
		t.Helper()
		info, err := os.Lstat(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		return info.Mode()
	}
	if m := mode(PrivateFile); m.Perm() != 0o600 {
		t.Errorf("%s mode %v", PrivateFile, m)
	}
	if m := mode("scripts/bump.sh"); m.Perm() != 0o755 {
		t.Errorf("bump.sh mode %v", m)
	}
	if m := mode("metadata/restricted"); m.Perm() != 0o750 || !m.IsDir() {
		t.Errorf("restricted dir mode %v", m)
	}
	for _, l := range []string{OutsideLink, AbsoluteLink, "eclass/alias.eclass", "profiles/default/linux/amd64/current"} {
		if mode(l)&fs.ModeSymlink == 0 {
			t.Errorf("%s is not a symlink", l)
		}
	}
	if target, _ := os.Readlink(filepath.Join(root, OutsideLink)); !strings.HasPrefix(target, "../../") {
		t.Errorf("outside link target %q", target)
	}
	info, err := os.Stat(filepath.Join(root, BigFile))
	if err != nil || info.Size() != DefaultBigFile {
		t.Errorf("big file: %v %v", info, err)
	}
	if info, err := os.Stat(filepath.Join(root, "metadata/empty-file")); err != nil || info.Size() != 0 {
		t.Errorf("empty file: %v", err)
	}
	for _, f := range []string{SpacesFile, UTF8File, TimestampFile, "distfiles/should-not-be-synced", ".git/should-not-be-synced"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	// Sub-second and whole-second mtimes both occur.
	var frac, whole int
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			info, _ := d.Info()
			if info.ModTime().Nanosecond() != 0 {
				frac++
			} else {
				whole++
			}
		}
		return nil
	})
	if frac == 0 || whole == 0 {
		t.Errorf("mtimes: %d sub-second, %d whole", frac, whole)
	}
}

func TestMutate(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	for _, d := range []string{a, b} {
		if _, err := Generate(d, Options{Seed: 7, Files: 300, PortageExcluded: true}); err != nil {
			t.Fatal(err)
		}
	}
	before := digest(t, a)
	ca, err := Mutate(a, 99)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := Mutate(b, 99)
	if err != nil {
		t.Fatal(err)
	}
	after, afterB := digest(t, a), digest(t, b)
	for k, v := range after {
		if afterB[k] != v {
			t.Errorf("Mutate not deterministic at %s", k)
		}
	}
	if fmt.Sprint(ca) != fmt.Sprint(cb) {
		t.Errorf("changes differ:\n%v\n%v", ca, cb)
	}
	if len(ca.Modified) < 3 || len(ca.Appended) < 3 || len(ca.Added) < 3 || len(ca.Removed) < 2 ||
		len(ca.RemovedDirs) != 1 || ca.FileToDir == "" || ca.DirToFile == "" || len(ca.Chmodded) != 2 {
		t.Fatalf("too few changes: %+v", ca)
	}
	for _, rel := range append(append([]string{}, ca.Modified...), ca.Appended...) {
		if before[rel] == after[rel] {
			t.Errorf("%s unchanged", rel)
		}
	}
	for _, rel := range ca.Modified {
		var m1, s1, m2, s2 string
		fmt.Sscan(before[rel], &m1, &s1)
		fmt.Sscan(after[rel], &m2, &s2)
		if s1 != s2 {
			t.Errorf("modified %s changed size %s -> %s", rel, s1, s2)
		}
	}
	for _, rel := range append(append([]string{}, ca.Removed...), ca.RemovedDirs...) {
		if _, ok := after[rel]; ok {
			t.Errorf("%s not removed", rel)
		}
	}
	for _, rel := range ca.Added {
		if _, ok := before[rel]; ok {
			t.Errorf("added %s existed", rel)
		}
		if _, ok := after[rel]; !ok {
			t.Errorf("added %s missing", rel)
		}
	}
	for _, d := range PortageExcluded {
		for k, v := range before {
			if strings.HasPrefix(k, d+"/") && after[k] != v {
				t.Errorf("excluded %s touched", k)
			}
		}
	}
	want := len(ca.Modified) + len(ca.Appended) + len(ca.Truncated) + len(ca.Added) + 2
	if ca.Transfers != want {
		t.Errorf("Transfers = %d, want %d", ca.Transfers, want)
	}
}
