package binpkg

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
)

// maxDirDepth is how deep package files may lie: cat/pn/file.
const maxDirDepth = 2

// dirState is what a scan of the PKGDIR found: its package files, sorted by
// path, and a digest of their paths, sizes and mtimes that changes whenever
// a package is added, removed or rewritten.
type dirState struct {
	files []pkgFile
	sig   [sha256.Size]byte
}

// scanDir lists the package files of the PKGDIR below root (regular files
// only, as Portage; dot-files and dot-directories are skipped).
func scanDir(root *os.Root) (dirState, error) {
	var files []pkgFile
	err := fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == "." {
				return err
			}
			return nil // unreadable subdirectory: skip it
		}
		if p == "." {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if strings.Count(p, "/") >= maxDirDepth {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || packageExt(d.Name()) == "" || !strings.Contains(p, "/") {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		files = append(files, pkgFile{Path: p, Size: info.Size(), MTime: info.ModTime().Unix()})
		return nil
	})
	if err != nil {
		return dirState{}, fmt.Errorf("scan package directory: %w", err)
	}
	sortPkgFiles(files)
	return dirState{files: files, sig: signature(files)}, nil
}

func sortPkgFiles(files []pkgFile) {
	slices.SortFunc(files, func(a, b pkgFile) int { return strings.Compare(a.Path, b.Path) })
}

// signature digests a sorted list of package files.
func signature(files []pkgFile) [sha256.Size]byte {
	h := sha256.New()
	for _, f := range files {
		h.Write([]byte(f.Path))
		h.Write([]byte{0})
		h.Write(strconv.AppendInt(nil, f.Size, 10))
		h.Write([]byte{0})
		h.Write(strconv.AppendInt(nil, f.MTime, 10))
		h.Write([]byte{'\n'})
	}
	var s [sha256.Size]byte
	h.Sum(s[:0])
	return s
}

// cleanRel turns a request path into a path relative to the PKGDIR. It
// refuses (ok false) empty, "." and ".." segments, backslashes and NUL
// bytes; hidden reports a segment starting with a dot.
func cleanRel(p string) (rel string, ok, hidden bool) {
	p = strings.TrimPrefix(p, "/")
	if p == "" {
		return "", true, false
	}
	if strings.ContainsAny(p, "\\\x00") {
		return "", false, false
	}
	for seg := range strings.SplitSeq(p, "/") {
		switch {
		case seg == "" || seg == "." || seg == "..":
			return "", false, false
		case strings.HasPrefix(seg, "."):
			hidden = true
		}
	}
	return path.Clean(p), true, hidden
}
