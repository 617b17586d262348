package main

import (
	"context"
	"time"

	"github.com/lanmirror/lanmirror/internal/config"
	"github.com/lanmirror/lanmirror/internal/distcache"
	"github.com/lanmirror/lanmirror/internal/evict"
	"github.com/lanmirror/lanmirror/internal/gentoo"
	"github.com/lanmirror/lanmirror/internal/progress"
)

// defaultCleanInterval is how often the daemon cleans when only a size cap
// is set.
const defaultCleanInterval = time.Hour

// indexWait bounds how long the first cleaning waits for the tree index.
const indexWait = 5 * time.Minute

// cleanEnabled: the daemon cleans when an interval or a size cap is set.
func cleanEnabled(cfg *config.Serve) bool { return cfg.CleanInterval > 0 || cfg.MaxCache > 0 }

// openClean returns the periodic cleaner: a first pass once the tree index
// is ready (or after indexWait), then one every CleanInterval. Each pass
// removes unreferenced distfiles unused for the grace period (when a tree
// is indexed) and enforces --max-cache, least recently served first, as
// lanmirror clean does.
func (s *server) openClean(_ context.Context) (func(context.Context) error, error) {
	store, err := s.distStore()
	if err != nil {
		return nil, err
	}
	interval := s.cfg.CleanInterval
	if interval <= 0 {
		interval = defaultCleanInterval
	}
	ti := s.index
	return func(ctx context.Context) error {
		if ti != nil {
			wait, cancel := context.WithTimeout(ctx, indexWait)
			select {
			case <-ti.Ready():
			case <-wait.Done():
			}
			cancel()
		}
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if ctx.Err() != nil {
				return nil
			}
			s.cleanPass(ctx, store, ti)
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	}, nil
}

// cleanPass runs one cleaning and logs what it did.
func (s *server) cleanPass(ctx context.Context, store *distcache.Store, ti *gentoo.TreeIndex) {
	grace := s.cfg.CleanGrace
	if grace <= 0 {
		grace = defaultGrace
	}
	pol := evict.Policy{MaxSize: s.cfg.MaxCache, Grace: grace}
	if ti != nil {
		switch idx := ti.Current(); {
		case idx == nil:
			s.log.Warn("clean: tree not indexed yet; unreferenced distfiles are kept this time", "tree", ti.Path())
		default:
			ref, err := evict.ReferencedBy(idx)
			if err != nil {
				s.log.Warn("clean: unreferenced distfiles are kept", "err", err)
			}
			pol.Referenced = ref
		}
	}
	if pol.Referenced == nil && pol.MaxSize == 0 {
		return
	}
	start := time.Now()
	res, err := evict.Clean(ctx, store, pol, false)
	for _, v := range res.Victims {
		s.log.Info("clean: removing", "name", v.Name, "size", v.Size, "reason", v.Reason, "last_use", v.LastUse())
	}
	if err != nil && ctx.Err() == nil {
		s.log.Warn("clean failed", "err", err)
	}
	if res.Removed > 0 || err != nil {
		s.log.Info("cache cleaned", "removed", res.Removed, "freed", progress.FormatBytes(res.RemovedBytes),
			"size", progress.FormatBytes(res.Before-res.RemovedBytes), "max", progress.FormatBytes(s.cfg.MaxCache), "took", time.Since(start).Round(time.Millisecond))
	}
}
