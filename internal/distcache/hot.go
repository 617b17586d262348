package distcache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/lanmirror/lanmirror/internal/objstore"
)

// The hot cache: with a remote backend and Options.HotCache > 0, the
// Store's directory keeps local copies of recently served distfiles, up to
// HotCache bytes (least recently served removed first). A hit on a local
// copy needs no request to the object storage and is sent with sendfile.
// Copies come from this node's own downloads (the verified temporary file
// is kept) and from hits on the object storage (copied in the background,
// checked against the object's size and the Manifest). Only distfiles are
// kept: they are immutable, so a local copy never goes stale.

// hotState is the hot cache's bookkeeping.
type hotState struct {
	max     int64
	fillSem chan struct{} // bounds the background copies
	mu      sync.Mutex
	filling map[string]bool
	trimMu  sync.Mutex
}

func newHotState(max int64) *hotState {
	if max <= 0 {
		return nil
	}
	return &hotState{max: max, fillSem: make(chan struct{}, 2), filling: map[string]bool{}}
}

// hotEligible reports whether obj may have a local copy.
func (c *Cache) hotEligible(obj Object) bool {
	return c.hot != nil && !obj.Volatile && strings.HasPrefix(obj.Key, DistfilesPrefix)
}

// hotLookup returns the local copy of obj, if there is a good one.
func (c *Cache) hotLookup(obj Object) *Body {
	if !c.hotEligible(obj) {
		return nil
	}
	f, fi, err := c.store.Open(obj.Key)
	if err != nil {
		return nil
	}
	if obj.Expect != nil && fi.Size() != obj.Expect.Size {
		f.Close()
		c.store.Remove(obj.Key)
		return nil
	}
	b := storedBody(obj.Key, f, fi, "", storedETag(obj.Expect, fi))
	b.taint = c.taint
	return b
}

// hotFill copies the remote object to a local copy in the background
// (at most two at a time; skipped when both are busy).
func (c *Cache) hotFill(obj Object, in objstore.Info) {
	if !c.hotEligible(obj) || in.Size > c.hot.max {
		return
	}
	h := c.hot
	h.mu.Lock()
	if h.filling[obj.Key] {
		h.mu.Unlock()
		return
	}
	select {
	case h.fillSem <- struct{}{}:
	default:
		h.mu.Unlock()
		return
	}
	h.filling[obj.Key] = true
	h.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() {
			h.mu.Lock()
			delete(h.filling, obj.Key)
			h.mu.Unlock()
			<-h.fillSem
		}()
		if err := c.hotCopy(obj, in); err != nil {
			c.log.Warn("cannot keep a local copy of an object", "key", obj.Key, "err", err)
			return
		}
		c.hotTrim()
	}()
}

func (c *Cache) hotCopy(obj Object, in objstore.Info) error {
	if _, err := c.store.Stat(obj.Key); err == nil {
		return nil // already there
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.maxDur)
	defer cancel()
	rc, err := c.remote.Open(ctx, obj.Key, 0)
	if err != nil {
		return err
	}
	defer rc.Close()
	f, tmp, err := c.store.createTemp()
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			c.store.root.Remove(tmp)
		}
	}()
	d := &download{obj: obj}
	d.resetHashes()
	var w io.Writer = f
	if d.b2 != nil {
		w = io.MultiWriter(f, d.b2, d.s512)
	}
	n, err := io.CopyBuffer(onlyWriter{w}, onlyReader{rc}, make([]byte, chunkSize))
	if err == nil && n != in.Size {
		err = fmt.Errorf("object storage sent %d of %d bytes", n, in.Size)
	}
	if err == nil && obj.Expect != nil {
		d.written, d.size = n, n
		if why := d.verify(); why != "" {
			err = errors.New(why)
		}
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if !in.ModTime.IsZero() {
		c.store.root.Chtimes(tmp, in.ModTime, in.ModTime)
	}
	if err := c.store.commit(tmp, obj.Key); err != nil {
		return err
	}
	ok = true
	c.store.MarkServed(obj.Key)
	return nil
}

// hotKeep keeps the verified temporary file of this node's own download
// as the local copy (called after the remote commit).
func (c *Cache) hotKeep(d *download) {
	if !c.hotEligible(d.obj) || d.written > c.hot.max {
		return
	}
	if d.lastModified != "" && !d.modTime.IsZero() {
		c.store.root.Chtimes(d.tmp, d.modTime, d.modTime)
	}
	if err := d.file.f.Sync(); err != nil {
		c.log.Warn("cannot keep a local copy of an object", "key", d.key, "err", err)
		return
	}
	// A hard link: the download's cleanup removes the temporary name.
	if err := c.store.root.Link(d.tmp, d.tmp+".hot"); err != nil {
		c.log.Warn("cannot keep a local copy of an object", "key", d.key, "err", err)
		return
	}
	if err := c.store.commit(d.tmp+".hot", d.key); err != nil {
		c.store.root.Remove(d.tmp + ".hot")
		c.log.Warn("cannot keep a local copy of an object", "key", d.key, "err", err)
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.hotTrim()
	}()
}

// hotTrim removes the least recently served local copies while they take
// more than the cap.
func (c *Cache) hotTrim() {
	c.hot.trimMu.Lock()
	defer c.hot.trimMu.Unlock()
	ents, err := c.store.Entries(DistfilesPrefix)
	if err != nil {
		c.log.Warn("hot cache: cannot list local copies", "err", err)
		return
	}
	var total int64
	for _, e := range ents {
		total += e.Size
	}
	if total <= c.hot.max {
		return
	}
	sort.Slice(ents, func(i, j int) bool {
		a, b := ents[i].LastServed, ents[j].LastServed
		if a.Equal(b) {
			return ents[i].ModTime.Before(ents[j].ModTime)
		}
		return a.Before(b)
	})
	for _, e := range ents {
		if total <= c.hot.max {
			break
		}
		if err := c.store.Remove(e.Key); err != nil {
			c.log.Warn("hot cache: cannot remove a local copy", "key", e.Key, "err", err)
			continue
		}
		total -= e.Size
	}
}
