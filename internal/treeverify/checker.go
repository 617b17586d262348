package treeverify

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/lanmirror/lanmirror/internal/gentoo"
)

// Checker verifies each tree the tree mirror pulls before it is published
// (its Verify method is a tree.Syncer.Verify hook): signed by Keyring, not
// older than the published tree, not older than MaxAge.
type Checker struct {
	Keyring openpgp.EntityList
	// MaxAge refuses a tree whose TIMESTAMP is older (0: no limit).
	MaxAge time.Duration
	// Published returns the directory of the published tree, if any: a
	// pulled tree must not be older than its TIMESTAMP.
	Published func() (dir string, ok bool)
	Log       *slog.Logger
	// Jobs is the number of workers (default GOMAXPROCS).
	Jobs int
}

// maxLoggedProblems bounds the problems logged one per line.
const maxLoggedProblems = 20

// Verify checks the tree in dir; the error names the files that fail and
// why.
func (c *Checker) Verify(ctx context.Context, dir string) error {
	o := Options{Keyring: c.Keyring, MaxAge: c.MaxAge, Jobs: c.Jobs}
	if c.Published != nil {
		if pub, ok := c.Published(); ok {
			if ts, err := TopTimestamp(pub); err == nil {
				o.NotBefore = ts
			}
		}
	}
	rep, err := Verify(ctx, dir, o)
	log := c.Log
	if log == nil {
		log = slog.Default()
	}
	if err != nil {
		if ve, ok := err.(*Error); ok {
			for i, p := range ve.Problems {
				if i == maxLoggedProblems {
					log.Error("tree: verification: more problems not logged", "count", ve.Total-i)
					break
				}
				log.Error("tree: verification failed", "file", p.Path, "why", p.Reason)
			}
		}
		return err
	}
	log.Info("tree: pulled tree verified", "signed_by", rep.Signer, "timestamp", rep.Timestamp.UTC().Format(time.RFC3339),
		"manifests", rep.Manifests, "files", rep.Files, "bytes", rep.Bytes, "duration", rep.Duration.Round(time.Millisecond))
	return nil
}

// TopTimestamp returns the TIMESTAMP of the top-level Manifest of the tree
// in dir, without checking anything (for a tree verified before).
func TopTimestamp(dir string) (time.Time, error) {
	data, err := readWhole(filepath.Join(dir, TopManifest), maxTopManifest)
	if err != nil {
		return time.Time{}, &os.PathError{Op: "read", Path: filepath.Join(dir, TopManifest), Err: err}
	}
	v := &verifier{}
	m, _, err := v.parse(TopManifest, data, false)
	if err != nil {
		return time.Time{}, err
	}
	for _, e := range m.Entries {
		if e.Tag == gentoo.TagTimestamp {
			return e.Time, nil
		}
	}
	return time.Time{}, os.ErrNotExist
}
