// Package evict decides which cached distfiles to remove and removes them:
// files no DIST entry of the current tree references, once unused for a
// grace period (as eclean-dist does), and, under a size cap, the least
// recently served files first. lanmirror clean and the daemon's periodic
// cleaning share it.
package evict

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lanmirror/lanmirror/internal/distcache"
)

// Reason says why a file is removed.
type Reason string

// Reasons.
const (
	Unreferenced Reason = "unreferenced" // no DIST entry, unused for the grace period
	OverCap      Reason = "size-cap"     // least recently served while over the cap
)

// File is a cached distfile as the planner sees it.
type File struct {
	Key        string // store key, "distfiles/<name>"
	Name       string // distfile name
	Size       int64
	ModTime    time.Time
	LastServed time.Time // zero when never served
}

// LastUse is when the file was last served, or its modification time
// (when it entered the cache, or upstream's date) if it never was.
func (f File) LastUse() time.Time {
	if f.LastServed.IsZero() {
		return f.ModTime
	}
	return f.LastServed
}

// Policy is what to remove.
type Policy struct {
	// MaxSize caps the total size of the distfiles; 0 means no cap.
	MaxSize int64
	// Referenced reports whether the tree has a DIST entry for a name;
	// nil means no tree is known and nothing counts as unreferenced.
	Referenced func(name string) bool
	// Grace is how long an unreferenced file is kept after its last use.
	Grace time.Duration
	// Now is the reference time (zero: time.Now()).
	Now time.Time
}

// Victim is one file to remove and why.
type Victim struct {
	File
	Reason Reason
}

// Plan is the outcome of a policy on a set of files.
type Plan struct {
	Victims []Victim
	// Before and After are the total sizes before and after removal.
	Before, After int64
	// Files is the number of files considered.
	Files int
}

// Freed is the space the plan frees.
func (p Plan) Freed() int64 { return p.Before - p.After }

// MakePlan applies the policy to files: first unreferenced files whose last
// use is older than the grace period, then, while the rest is larger than
// MaxSize, the least recently used (served) files, oldest first.
func MakePlan(files []File, pol Policy) Plan {
	now := pol.Now
	if now.IsZero() {
		now = time.Now()
	}
	p := Plan{Files: len(files)}
	var keep []File
	for _, f := range files {
		p.Before += f.Size
		if pol.Referenced != nil && !pol.Referenced(f.Name) && now.Sub(f.LastUse()) >= pol.Grace {
			p.Victims = append(p.Victims, Victim{File: f, Reason: Unreferenced})
			continue
		}
		keep = append(keep, f)
	}
	total := int64(0)
	for _, f := range keep {
		total += f.Size
	}
	if pol.MaxSize > 0 && total > pol.MaxSize {
		slices.SortStableFunc(keep, func(a, b File) int {
			if c := a.LastUse().Compare(b.LastUse()); c != 0 {
				return c
			}
			return cmp.Compare(a.Name, b.Name)
		})
		for _, f := range keep {
			if total <= pol.MaxSize {
				break
			}
			p.Victims = append(p.Victims, Victim{File: f, Reason: OverCap})
			total -= f.Size
		}
	}
	p.After = total
	return p
}

// Store is what cleaning needs of the distfiles store.
type Store interface {
	Entries(prefix string) ([]distcache.Entry, error)
	Remove(key string) error
}

// Result is what Clean did.
type Result struct {
	Plan
	// Removed counts the files removed (0 on a dry run); RemovedBytes
	// their size.
	Removed      int
	RemovedBytes int64
	// Errors lists the files that could not be removed.
	Errors []error
}

// Clean lists the distfiles of store, plans with pol and, unless dryRun,
// removes the victims. It stops early when ctx is cancelled. The store
// lists complete objects only, so a download in progress is never touched.
func Clean(ctx context.Context, store Store, pol Policy, dryRun bool) (Result, error) {
	ents, err := store.Entries(distcache.DistfilesPrefix)
	if err != nil {
		return Result{}, fmt.Errorf("clean: %w", err)
	}
	files := make([]File, len(ents))
	for i, e := range ents {
		files[i] = File{Key: e.Key, Name: e.Name, Size: e.Size, ModTime: e.ModTime, LastServed: e.LastServed}
	}
	res := Result{Plan: MakePlan(files, pol)}
	if dryRun {
		return res, nil
	}
	for _, v := range res.Victims {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("clean: %w", err)
		}
		if err := store.Remove(v.Key); err != nil {
			res.Errors = append(res.Errors, err)
			continue
		}
		res.Removed++
		res.RemovedBytes += v.Size
	}
	if len(res.Errors) > 0 {
		return res, fmt.Errorf("clean: %d files not removed: %w", len(res.Errors), errors.Join(res.Errors...))
	}
	return res, nil
}
