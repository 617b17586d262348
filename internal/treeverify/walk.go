package treeverify

import (
	"bytes"
	"compress/bzip2"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/klauspost/compress/gzip"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
	"golang.org/x/sys/unix"

	"github.com/lanmirror/lanmirror/internal/gentoo"
)

const (
	// maxTopManifest bounds the top-level Manifest (Gentoo's: under 1 KiB).
	maxTopManifest = 16 << 20
	// maxSubManifest bounds a sub-Manifest as stored, maxManifestText
	// once decompressed (Gentoo's largest: a few MiB).
	maxSubManifest  = 256 << 20
	maxManifestText = 512 << 20
	// fileBatch is how many files of one directory one job hashes.
	fileBatch = 32
)

// dirID identifies a directory, to find symlink loops.
type dirID struct{ dev, ino uint64 }

// walkDir checks the directory rel: each name against the index, regular
// files queued for hashing, subdirectories queued for walking. chain holds
// the directories above it.
func (v *verifier) walkDir(w *worker, rel string, chain []dirID) {
	if v.failed[rel] {
		return // its Manifest failed (reported): its files cannot be checked
	}
	f, err := os.Open(v.abs(rel))
	if err != nil {
		v.problem(relOrDot(rel), "cannot read directory: %v", unwrapPath(err))
		return
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			id := dirID{uint64(st.Dev), uint64(st.Ino)}
			for _, a := range chain {
				if a == id {
					v.problem(relOrDot(rel), "symlink loop")
					return
				}
			}
			chain = append(chain[:len(chain):len(chain)], id)
		}
	}
	ents, err := f.ReadDir(-1)
	if err != nil {
		v.problem(relOrDot(rel), "cannot read directory: %v", unwrapPath(err))
		return
	}
	dm := v.dirs[rel] // read only during the walk
	var batch []fileJob
	for _, de := range ents {
		name := de.Name()
		if strings.HasPrefix(name, ".") {
			continue // dot files and directories are not part of the tree
		}
		if rel == "" && name == TopManifest {
			continue // the root of trust, checked first
		}
		child := joinRel(rel, name)
		e := dm[name]
		if e != nil {
			e.seen = true
			if e.tag == gentoo.TagIgnore {
				continue
			}
		}
		typ := de.Type()
		if typ&fs.ModeSymlink != 0 {
			fi, err := os.Stat(v.abs(child))
			if err != nil {
				if e != nil {
					v.problem(child, "listed in %s, but is a dangling symlink", *e.from)
				}
				continue // an unlisted dangling symlink is no file (as in gemato)
			}
			typ = fi.Mode().Type()
		}
		switch {
		case typ.IsDir():
			if e != nil {
				v.problem(child, "is a directory, but %s lists it as a file", *e.from)
				continue
			}
			v.pool.push(func(w *worker) { v.walkDir(w, child, chain) })
		case typ.IsRegular():
			if e == nil {
				v.problem(child, "not listed in any Manifest")
				continue
			}
			if e.tag == gentoo.TagManifest && e.checked == len(e.digests) {
				continue // verified when it was loaded
			}
			batch = append(batch, fileJob{name: name, rel: child, e: e})
			if len(batch) == fileBatch {
				v.pushFiles(batch)
				batch = nil
			}
		default:
			v.problem(child, "not a regular file (%s)", typeName(typ))
		}
	}
	// The last batch is hashed by this worker, relative to the open
	// directory: no hand-over for the small directories that make most of
	// a tree.
	if len(batch) == 0 {
		return
	}
	rc, err := f.SyscallConn()
	if err == nil {
		err = rc.Control(func(fd uintptr) {
			for _, j := range batch {
				v.checkFile(w, int(fd), j.name, j.rel, j.e)
			}
		})
	}
	if err != nil {
		for _, j := range batch {
			v.checkFile(w, -1, j.name, j.rel, j.e)
		}
	}
}

type fileJob struct {
	name, rel string
	e         *entry
}

func (v *verifier) pushFiles(batch []fileJob) {
	v.pool.push(func(w *worker) {
		for _, j := range batch {
			v.checkFile(w, -1, j.name, j.rel, j.e)
		}
	})
}

// checkUnseen queues a check of every entry the walk did not reach: a
// missing file, or one below a dot or IGNOREd directory (still checked, as
// gemato does).
func (v *verifier) checkUnseen() {
	var batch []fileJob
	for d, dm := range v.dirs {
		for name, e := range dm {
			if e.seen || e.tag == gentoo.TagIgnore || (e.tag == gentoo.TagManifest && e.checked == len(e.digests)) {
				continue
			}
			batch = append(batch, fileJob{name: name, rel: joinRel(d, name), e: e})
			if len(batch) == fileBatch {
				v.pushFiles(batch)
				batch = nil
			}
		}
	}
	if len(batch) > 0 {
		v.pushFiles(batch)
	}
}

// checkFile hashes the file rel and compares it with e. When dirfd is not
// negative, the file is opened as name relative to that directory
// descriptor (no path walk from the root).
func (v *verifier) checkFile(w *worker, dirfd int, name, rel string, e *entry) {
	const flags = unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOCTTY | unix.O_NONBLOCK // no hang on a FIFO
	var fd int
	var err error
	for {
		if dirfd >= 0 {
			fd, err = unix.Openat(dirfd, name, flags, 0)
		} else {
			fd, err = unix.Open(v.abs(rel), flags, 0)
		}
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		if err == unix.ENOENT || err == unix.ENOTDIR {
			v.problem(rel, "missing (listed in %s)", *e.from)
		} else {
			v.problem(rel, "open: %v", err)
		}
		return
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		v.problem(rel, "stat: %v", err)
		return
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		v.problem(rel, "listed in %s, but is not a regular file (%s)", *e.from, rawTypeName(uint32(st.Mode)))
		return
	}
	if st.Size != e.size && st.Size != 0 {
		v.problem(rel, "size %d, %s says %d", st.Size, *e.from, e.size)
		return
	}
	n, err := w.hashFD(fd, e.digests, st.Size)
	if err != nil {
		v.problem(rel, "read: %v", err)
		return
	}
	v.nFiles.Add(1)
	v.nBytes.Add(n)
	if n != e.size {
		v.problem(rel, "size %d, %s says %d", n, *e.from, e.size)
		return
	}
	if k, got := w.mismatch(e.digests); k != hashNone {
		v.problem(rel, "%s mismatch (%s says %s, the file has %s)", k, *e.from, shortHex(expected(e.digests, k)), shortHex(got))
	}
}

// hashFD reads the regular file fd to its end through the hashes of ds and
// returns its size. A short read that brings the total to size, the size
// fstat gave, is the end of a regular file: no extra read for EOF.
func (w *worker) hashFD(fd int, ds []digest, size int64) (int64, error) {
	for _, d := range ds {
		w.hashers.get(d.kind)
	}
	var n int64
	for {
		k, err := unix.Read(fd, w.buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if k == 0 {
			return n, nil
		}
		n += int64(k)
		for _, d := range ds {
			w.hashers.h[d.kind].Write(w.buf[:k])
		}
		if k < len(w.buf) && n == size {
			return n, nil
		}
	}
}

// hash reads r to its end through the hashes of ds and returns its size.
func (w *worker) hash(r io.Reader, ds []digest) (int64, error) {
	for _, d := range ds {
		w.hashers.get(d.kind)
	}
	var n int64
	for {
		k, err := r.Read(w.buf)
		if k > 0 {
			n += int64(k)
			for _, d := range ds {
				w.hashers.h[d.kind].Write(w.buf[:k])
			}
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func rawTypeName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFIFO:
		return "named pipe"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR, unix.S_IFBLK:
		return "device"
	}
	return fmt.Sprintf("mode %o", mode)
}

// mismatch compares the sums of the last hash call with ds and returns
// the first kind that differs, with the hex digest the data has.
func (w *worker) mismatch(ds []digest) (hashKind, string) {
	for _, d := range ds {
		s := &w.hashers
		s.sum = s.h[d.kind].Sum(s.sum[:0])
		if cap(s.hex) < 2*len(s.sum) {
			s.hex = make([]byte, 2*len(s.sum))
		}
		s.hex = s.hex[:2*len(s.sum)]
		hex.Encode(s.hex, s.sum)
		if string(s.hex) != d.hex {
			return d.kind, string(s.hex)
		}
	}
	return hashNone, ""
}

func expected(ds []digest, k hashKind) string {
	for _, d := range ds {
		if d.kind == k {
			return d.hex
		}
	}
	return ""
}

func shortHex(h string) string {
	if len(h) > 16 {
		return h[:16] + "…"
	}
	return h
}

// readChecked reads the sub-Manifest rel whole and checks it against its
// entry before anything parses it.
func (v *verifier) readChecked(w *worker, rel string, size int64, ds []digest, from string) ([]byte, bool) {
	f, err := os.Open(v.abs(rel))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			v.problem(rel, "missing (listed in %s)", from)
		} else {
			v.problem(rel, "%v", unwrapPath(err))
		}
		return nil, false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		v.problem(rel, "%v", unwrapPath(err))
		return nil, false
	}
	if !fi.Mode().IsRegular() {
		v.problem(rel, "listed in %s, but is not a regular file (%s)", from, typeName(fi.Mode().Type()))
		return nil, false
	}
	if fi.Size() != size && fi.Size() != 0 {
		v.problem(rel, "size %d, %s says %d", fi.Size(), from, size)
		return nil, false
	}
	var buf bytes.Buffer
	buf.Grow(int(size))
	n, err := w.hash(io.TeeReader(io.LimitReader(f, size+1), &buf), ds)
	if err != nil {
		v.problem(rel, "read: %v", unwrapPath(err))
		return nil, false
	}
	v.nFiles.Add(1)
	v.nBytes.Add(n)
	if n != size {
		v.problem(rel, "size %d, %s says %d", n, from, size)
		return nil, false
	}
	if k, got := w.mismatch(ds); k != hashNone {
		v.problem(rel, "%s mismatch (%s says %s, the file has %s)", k, from, shortHex(expected(ds, k)), shortHex(got))
		return nil, false
	}
	return buf.Bytes(), true
}

// readWhole reads a file of at most limit bytes.
func readWhole(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errors.New("missing: not a GLEP 74 tree, or not pulled")
		}
		return nil, unwrapPath(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, unwrapPath(err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", typeName(fi.Mode().Type()))
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, unwrapPath(err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return data, nil
}

// decompress returns the text of a Manifest stored as rel, by the name's
// suffix (GLEP 74: .gz, .bz2, .xz, .lzma; anything else is plain).
func decompress(rel string, data []byte) ([]byte, error) {
	var r io.Reader
	var err error
	switch {
	case strings.HasSuffix(rel, ".gz"):
		r, err = gzip.NewReader(bytes.NewReader(data))
	case strings.HasSuffix(rel, ".bz2"):
		r = bzip2.NewReader(bytes.NewReader(data))
	case strings.HasSuffix(rel, ".xz"):
		r, err = xz.NewReader(bytes.NewReader(data))
	case strings.HasSuffix(rel, ".lzma"):
		r, err = lzma.NewReader(bytes.NewReader(data))
	default:
		return data, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot decompress: %v", err)
	}
	text, err := io.ReadAll(io.LimitReader(r, maxManifestText+1))
	if err != nil {
		return nil, fmt.Errorf("cannot decompress: %v", err)
	}
	if len(text) > maxManifestText {
		return nil, fmt.Errorf("more than %d bytes once decompressed", maxManifestText)
	}
	return text, nil
}

var (
	signedStart = []byte("-----BEGIN PGP SIGNED MESSAGE-----")
	armorLine   = []byte("\n-----")
)

// parse reads the text of the Manifest rel. A clear-signed Manifest has its
// signature checked when a key ring is set (the top-level one must be
// signed then); only the signed text is parsed. It returns the signer's
// description, if any.
func (v *verifier) parse(rel string, text []byte, top bool) (*gentoo.Manifest, string, error) {
	body := text
	signer := ""
	if trimmed := bytes.TrimLeft(text, " \t\r\n"); bytes.HasPrefix(trimmed, signedStart) {
		b, rest := clearsign.Decode(trimmed)
		if b == nil {
			return nil, "", errors.New("malformed OpenPGP clear-signed message")
		}
		if len(bytes.TrimSpace(rest)) > 0 {
			return nil, "", errors.New("data after the OpenPGP signature (not signed)")
		}
		if v.signed {
			sig, err := io.ReadAll(b.ArmoredSignature.Body)
			if err != nil {
				return nil, "", fmt.Errorf("bad signature armor: %v", err)
			}
			ent, err := checkClearsigned(v.opts.Keyring, b.Bytes, sig, v.now)
			if err != nil {
				return nil, "", err
			}
			signer = KeyDescription(ent)
		}
		body = b.Plaintext
	} else if top && v.signed {
		return nil, "", errors.New("not OpenPGP signed (a signed Manifest is required with a key)")
	}
	if bytes.HasPrefix(body, armorLine[1:]) || bytes.Contains(body, armorLine) {
		return nil, "", errors.New("unexpected OpenPGP armor line in the Manifest text")
	}
	m, err := gentoo.ParseManifest(bytes.NewReader(body))
	if err != nil {
		return nil, "", err
	}
	if m.BadCount > 0 {
		return nil, "", fmt.Errorf("malformed: %s", m.Bad[0])
	}
	return m, signer, nil
}

func relOrDot(rel string) string {
	if rel == "" {
		return "."
	}
	return rel
}

// unwrapPath drops the absolute path from an *fs.PathError: problems name
// the file relative to the tree already.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

func typeName(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return m.String()
}
