package distcache

import (
	"bytes"
	"context"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/crypto/blake2b"

	"github.com/lanmirror/lanmirror/internal/gentoo"
	"github.com/lanmirror/lanmirror/internal/metrics"
)

// QuarantineDir is the directory below the data directory where
// VerifyDistfiles moves cached distfiles that do not match the tree:
// quarantine/<name>.<UTC time>, with a .why file beside it saying what
// did not match. Nothing serves or cleans it; the admin looks and
// removes.
const QuarantineDir = quarantineDir

// VerifyOptions configure VerifyDistfiles.
type VerifyOptions struct {
	// Verifier gives the Manifest entries to check against (required).
	Verifier Verifier
	// DryRun reports mismatches without moving anything.
	DryRun bool
}

// VerifyReport is what one VerifyDistfiles pass found.
type VerifyReport struct {
	Checked     int   // files hashed (with a Manifest entry)
	OK          int   // files that matched
	Unknown     int   // files the tree has no DIST entry for (not checked)
	Quarantined int   // mismatches moved away (or that would be, DryRun)
	Errors      int   // files that could not be read or moved
	Bytes       int64 // bytes hashed
	Bad         []VerifyProblem
}

// VerifyProblem is one mismatch or error.
type VerifyProblem struct {
	Name  string // distfile name
	Why   string // what did not match, or the error
	Moved string // where it went below the data directory ("" when not moved)
}

// VerifyDistfiles re-hashes every cached distfile the Verifier knows
// against its Manifest entry (size, BLAKE2B, SHA512) and moves each
// mismatch to QuarantineDir, so that a file cached by an older version, a
// damaged disk or a changed Manifest is fetched again instead of being
// served. It is safe while the daemon serves: a file replaced during the
// check (a new download) is left alone; clients reading a quarantined
// file finish reading it. Metric: lanmirror_cache_verified_files_total.
func (s *Store) VerifyDistfiles(ctx context.Context, o VerifyOptions) (VerifyReport, error) {
	var r VerifyReport
	if o.Verifier == nil {
		return r, errors.New("distcache: verify: no tree to verify against")
	}
	ents, err := s.Entries(DistfilesPrefix)
	if err != nil {
		return r, err
	}
	buf := make([]byte, 256<<10)
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return r, fmt.Errorf("distcache: verify: %w", err)
		}
		if strings.Contains(e.Name, "/") {
			continue // not a flat distfile name
		}
		d, ok := o.Verifier.Lookup(e.Name)
		if !ok {
			r.Unknown++
			metrics.CacheVerified.WithLabelValues("unknown").Inc()
			continue
		}
		why, fi, n, err := s.checkDistfile(ctx, e.Key, &d, buf)
		r.Bytes += n
		switch {
		case err != nil && errors.Is(err, fs.ErrNotExist):
			continue // removed meanwhile
		case err != nil && ctx.Err() != nil:
			return r, fmt.Errorf("distcache: verify: %w", ctx.Err())
		case err != nil:
			r.Errors++
			metrics.CacheVerified.WithLabelValues("error").Inc()
			r.Bad = append(r.Bad, VerifyProblem{Name: e.Name, Why: err.Error()})
			s.log.Warn("verify-cache: cannot check a cached distfile", "name", e.Name, "err", err)
			continue
		}
		r.Checked++
		if why == "" {
			r.OK++
			metrics.CacheVerified.WithLabelValues("ok").Inc()
			continue
		}
		p := VerifyProblem{Name: e.Name, Why: why}
		if !o.DryRun {
			moved, err := s.Quarantine(e.Key, fi, why)
			if err != nil {
				r.Errors++
				metrics.CacheVerified.WithLabelValues("error").Inc()
				p.Why += "; not moved: " + err.Error()
				r.Bad = append(r.Bad, p)
				s.log.Error("verify-cache: a cached distfile does not match the Manifest and cannot be moved away", "name", e.Name, "why", why, "err", err)
				continue
			}
			if moved == "" {
				continue // replaced during the check
			}
			p.Moved = moved
			s.log.Warn("verify-cache: cached distfile does not match the Manifest; quarantined", "name", e.Name, "why", why, "to", moved)
		}
		r.Quarantined++
		metrics.CacheVerified.WithLabelValues("quarantined").Inc()
		r.Bad = append(r.Bad, p)
	}
	return r, nil
}

// checkDistfile hashes the object key and compares it with d; it returns
// why it differs ("" when it matches), the file it read and the bytes read.
func (s *Store) checkDistfile(ctx context.Context, key string, d *gentoo.Dist, buf []byte) (string, fs.FileInfo, int64, error) {
	f, fi, err := s.Open(key)
	if err != nil {
		return "", nil, 0, err
	}
	defer f.Close()
	if fi.Size() != d.Size {
		return fmt.Sprintf("size %d != Manifest %d", fi.Size(), d.Size), fi, 0, nil
	}
	b2, _ := blake2b.New512(nil)
	s512 := sha512.New()
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return "", fi, n, err
		}
		m, rerr := f.Read(buf)
		if m > 0 {
			b2.Write(buf[:m])
			s512.Write(buf[:m])
			n += int64(m)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return "", fi, n, fmt.Errorf("read %s: %w", key, rerr)
		}
	}
	switch {
	case n != d.Size:
		return fmt.Sprintf("read %d bytes, Manifest size %d", n, d.Size), fi, n, nil
	case d.BLAKE2B != nil && !bytes.Equal(b2.Sum(nil), d.BLAKE2B):
		return "BLAKE2B differs from the Manifest", fi, n, nil
	case d.SHA512 != nil && !bytes.Equal(s512.Sum(nil), d.SHA512):
		return "SHA512 differs from the Manifest", fi, n, nil
	}
	return "", fi, n, nil
}

// Quarantine moves the object key to QuarantineDir (named after the key's
// last segment and the time) with a .why file holding why, and forgets
// what the store records about it; it returns the new name relative to
// the data directory. When was is given and the object is no longer that
// file (replaced meanwhile), nothing is moved and the name is "".
func (s *Store) Quarantine(key string, was fs.FileInfo, why string) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	if was != nil {
		cur, err := s.root.Lstat(key)
		if err != nil {
			return "", s.notExist(key, err)
		}
		if !os.SameFile(cur, was) {
			return "", nil
		}
	}
	if err := s.mkdir(quarantineDir); err != nil {
		return "", fmt.Errorf("distcache: create %s: %w", quarantineDir, err)
	}
	base := quarantineDir + "/" + path.Base(key) + "." + time.Now().UTC().Format("20060102T150405.000000000Z")
	if err := s.root.Rename(key, base); err != nil {
		return "", fmt.Errorf("distcache: quarantine %s: %w", key, err)
	}
	s.served.forget(key)
	s.small.drop(key) // no copy in memory keeps serving it
	if err := s.root.Remove(metaName(key)); err != nil && !errors.Is(err, fs.ErrNotExist) && !isNotDir(err) {
		s.log.Warn("cannot remove object metadata", "key", key, "err", err)
	}
	note := fmt.Sprintf("key: %s\nwhen: %s\nwhy: %s\n", key, time.Now().UTC().Format(time.RFC3339), why)
	if err := s.writeAtomic(base+".why", []byte(note)); err != nil {
		s.log.Warn("cannot write the quarantine note", "file", base, "err", err)
	}
	if err := s.syncDir(path.Dir(key)); err != nil {
		s.log.Warn("cannot sync the directory", "dir", path.Dir(key), "err", err)
	}
	return base, nil
}
