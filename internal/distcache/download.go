package distcache

import (
	"bytes"
	"context"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/blake2b"

	"github.com/lanmirror/lanmirror/internal/metrics"
	"github.com/lanmirror/lanmirror/internal/objstore"
)

const (
	userAgent = "lanmirror (distfiles cache)"
	// chunkSize is the fixed buffer of a download.
	chunkSize = 64 << 10
	// maxTriesPerSource bounds the resumes from one source; each must
	// have made progress.
	maxTriesPerSource = 5
)

// errIdle is the cause of an attempt aborted for silence.
var errIdle = fmt.Errorf("upstream sent nothing for too long: %w", context.DeadlineExceeded)

// download is one upstream fetch in progress, shared by every client of
// the object. Its bytes go to a temporary file below .partial that readers
// read through their own offsets; it is renamed into place once complete
// and verified.
type download struct {
	c         *Cache
	id        string // random, for the ETags of its data (etag.go)
	key       string
	obj       Object
	sources   func(context.Context) []string
	stale     *meta // revalidation: what is known of the stored copy
	hasStored bool  // a stored copy exists (Volatile revalidation)

	ready     chan struct{} // closed when the body can be served or the download ended
	readyOnce sync.Once
	finished  chan struct{} // closed when the download ended

	// The writer's state; hashers cover exactly [0, written).
	tmp  string
	b2   hash.Hash
	s512 hash.Hash
	buf  []byte

	mu            sync.Mutex
	changed       chan struct{} // closed and replaced at every change (broadcast)
	file          *sharedFile   // nil once released after the end
	epoch         int           // incremented when the data restarts from 0
	written       int64
	size          int64 // -1 unknown
	modTime       time.Time
	lastModified  string // upstream Last-Modified header
	etag          string
	ctype         string
	validatorsSrc string // source the validators came from
	done          bool
	committed     bool
	useStored     bool
	storedOutcome Outcome
	err           error
}

func newDownload(c *Cache, obj Object, sources func(context.Context) []string, stale *meta, hasStored bool) *download {
	return &download{
		c: c, id: newDownloadID(), key: obj.Key, obj: obj, sources: sources, stale: stale, hasStored: hasStored,
		ready: make(chan struct{}), finished: make(chan struct{}), changed: make(chan struct{}),
		size: -1,
	}
}

// broadcast wakes every waiting reader; d.mu must be held.
func (d *download) broadcast() {
	close(d.changed)
	d.changed = make(chan struct{})
}

func (d *download) markReady() { d.readyOnce.Do(func() { close(d.ready) }) }

func (d *download) run() {
	defer d.c.wg.Done()
	metrics.ActiveDownloads.Inc()
	ctx, cancel := context.WithTimeout(d.c.ctx, d.c.maxDur)
	defer cancel()
	start := time.Now()

	result, err := d.fetch(ctx)
	if err != nil && d.hasStored {
		// Upstream failed: the stale copy keeps serving (and counts as
		// fresh again for a while, so that upstream is not asked by every
		// request while it is down).
		d.c.log.Warn("revalidation failed; serving the stale copy", "key", d.key, "err", err)
		d.touchMeta()
		result, err = "stale", nil
		d.mu.Lock()
		d.useStored, d.storedOutcome = true, Hit
		d.mu.Unlock()
	}
	metrics.UpstreamFetches.WithLabelValues(result).Inc()
	metrics.ActiveDownloads.Dec()

	// Leave the active set first: from now on a new Get finds the
	// committed object in the store, or starts afresh after a failure.
	d.leave()

	d.mu.Lock()
	if !d.committed && !d.useStored && d.written > 0 && d.obj.Expect != nil {
		// Clients may hold bytes of it that were to be verified and never
		// were (a corrupt copy that broke before its end): no continuing
		// them from another download. (Without a Manifest entry nothing
		// is verified, and a resume after an upstream break stays
		// possible.)
		d.taintLocked("download failed before its digest was checked")
	}
	d.done = true
	if err != nil {
		d.err = err
	}
	f := d.file
	d.file = nil
	d.broadcast()
	d.mu.Unlock()
	if f != nil {
		f.release()
	}
	if d.tmp != "" && (!d.committed || d.c.remote != nil) {
		// (With a remote backend the committed object is a copy; readers
		// still following the download hold the file open.)
		d.c.store.root.Remove(d.tmp)
	}
	close(d.finished)
	d.markReady()
	if err != nil {
		d.c.log.Warn("download failed", "key", d.key, "err", err, "duration", time.Since(start))
	} else {
		d.c.log.Info("download done", "key", d.key, "result", result, "bytes", d.written, "duration", time.Since(start))
	}
}

// leave removes d from the cache's active downloads (once it is no
// longer the place to join).
func (d *download) leave() {
	d.c.mu.Lock()
	if d.c.active[d.key] == d {
		delete(d.c.active, d.key)
	}
	d.c.mu.Unlock()
}

// touchMeta records a revalidation (304, or a failure served stale).
func (d *download) touchMeta() {
	m := meta{}
	if d.stale != nil {
		m = *d.stale
	}
	m.Fetched = d.c.now()
	if err := d.c.store.writeMeta(d.key, m); err != nil {
		d.c.log.Warn("cannot record revalidation", "key", d.key, "err", err)
	}
}

// attemptResult says what one upstream request achieved.
type attemptResult int

const (
	resComplete    attemptResult = iota // the whole body is in the file
	resNotModified                      // 304 to a revalidation
	resNotFound                         // 404/410
	resMismatch                         // the size contradicts the Manifest
	resRetry                            // broke after progress: resume from this source
	resNextSource                       // this source cannot give it now
	resLocal                            // writing the cache failed (disk full, permissions)
)

// fetch runs the download to its end and returns the metrics result.
func (d *download) fetch(ctx context.Context) (string, error) {
	if d.c.remote != nil && !d.hasStored && isRemoteLease(d.obj) {
		for round := 0; ; round++ {
			lease, served, peer, err := d.coordinate(ctx, round == 0 && len(d.c.peers) > 0)
			if err != nil {
				return "error", fmt.Errorf("%w: %s: cluster lease: %w", ErrUpstream, d.key, err)
			}
			if served {
				d.mu.Lock()
				d.useStored, d.storedOutcome = true, Join
				d.mu.Unlock()
				d.leave()
				d.markReady()
				return "cluster", nil
			}
			if peer != "" {
				// Stream from the node that downloads it (it joins its own
				// download and holds the last byte back until its upload).
				res, err := d.fetchFrom(ctx, func(context.Context) []string { return []string{peer} }, true)
				if err == nil {
					return res, nil
				}
				d.c.log.Info("streaming from the node holding the lease failed; waiting for the object instead", "key", d.key, "peer", peer, "err", err)
				d.reset()
				continue
			}
			if lease != nil {
				var stop func()
				ctx, stop = d.keepLease(ctx, lease)
				defer stop()
			}
			break
		}
	}
	return d.fetchFrom(ctx, d.sources, false)
}

// fetchFrom downloads from sources (viaPeer: another node of the
// cluster, which stores the object itself) into the temporary file.
func (d *download) fetchFrom(ctx context.Context, sourcesOf func(context.Context) []string, viaPeer bool) (string, error) {
	if d.file == nil {
		f, tmp, err := d.c.store.createTemp()
		if err != nil {
			return "error", fmt.Errorf("distcache: %s: cache storage: %w", d.key, err)
		}
		d.tmp = tmp
		d.file = newSharedFile(f)
		d.buf = make([]byte, chunkSize)
		d.resetHashes()
	}

	sources := sourcesOf(ctx)
	if len(sources) == 0 {
		return "not_found", fmt.Errorf("%w: %s: no upstream configured", ErrNotFound, d.key)
	}
	var fails []string
	var lastErr error
	notFound, mismatch := 0, 0
	for _, src := range sources {
		for try := 1; ; try++ {
			res, detail, err := d.attempt(ctx, src)
			if res == resComplete {
				if why := d.verify(); why != "" {
					res, detail = resMismatch, why
					d.reset()
				}
			}
			switch res {
			case resComplete:
				if viaPeer {
					if err := d.commitPeer(ctx); err != nil {
						return "error", fmt.Errorf("distcache: %s: cache storage: %w", d.key, err)
					}
					return "peer", nil
				}
				if err := d.commit(ctx); err != nil {
					return "error", fmt.Errorf("distcache: %s: cache storage: %w", d.key, err)
				}
				return "ok", nil
			case resNotModified:
				d.touchMeta()
				d.mu.Lock()
				d.useStored, d.storedOutcome = true, Revalidated
				d.mu.Unlock()
				d.leave() // the stored copy is fresh again: new requests hit it
				d.markReady()
				return "not_modified", nil
			case resNotFound:
				notFound++
			case resMismatch:
				mismatch++
				d.c.log.Warn("download does not match the Manifest", "key", d.key, "url", src, "why", detail)
			case resRetry:
				lastErr = err
				if try < maxTriesPerSource && ctx.Err() == nil {
					d.c.log.Info("upstream transfer broke; resuming", "key", d.key, "url", src, "at", d.offset(), "err", err)
					sleepCtx(ctx, time.Duration(try)*50*time.Millisecond)
					continue
				}
			case resNextSource:
				lastErr = err
			case resLocal:
				// Not upstream's fault: other sources would fail the same.
				return "error", fmt.Errorf("distcache: %s: cache storage: %w", d.key, err)
			}
			fails = append(fails, src+": "+detail)
			break
		}
		if ctx.Err() != nil {
			break
		}
	}
	why := strings.Join(fails, "; ")
	switch {
	case mismatch > 0:
		return "digest_mismatch", fmt.Errorf("%w: %s: %s", ErrCorrupt, d.key, why)
	case notFound == len(sources):
		return "not_found", fmt.Errorf("%w: %s: %s", ErrNotFound, d.key, why)
	case lastErr != nil:
		return "error", fmt.Errorf("%w: %s: %s: %w", ErrUpstream, d.key, why, lastErr)
	default:
		return "error", fmt.Errorf("%w: %s: %s", ErrUpstream, d.key, why)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func (d *download) offset() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.written
}

// attempt makes one request to src and copies what it sends into the
// file; detail describes a failure for the final error message.
func (d *download) attempt(ctx context.Context, src string) (attemptResult, string, error) {
	d.mu.Lock()
	off, size := d.written, d.size
	etag, lastMod, vsrc := d.etag, d.lastModified, d.validatorsSrc
	d.mu.Unlock()

	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watchdog := time.AfterFunc(d.c.idle, func() { cancel(errIdle) })
	defer watchdog.Stop()

	req, err := http.NewRequestWithContext(actx, http.MethodGet, src, nil)
	if err != nil {
		return resNextSource, "bad URL", err
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept-Encoding", "identity")
	if off > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-")
		if vsrc == src {
			if etag != "" && !strings.HasPrefix(etag, "W/") {
				req.Header.Set("If-Range", etag)
			} else if lastMod != "" {
				req.Header.Set("If-Range", lastMod)
			}
		}
	} else if d.stale != nil {
		if d.stale.ETag != "" {
			req.Header.Set("If-None-Match", d.stale.ETag)
		}
		if d.stale.LastModified != "" {
			req.Header.Set("If-Modified-Since", d.stale.LastModified)
		}
	}
	began := time.Now()
	resp, err := d.c.client.Do(req)
	d.c.observeAttempt(src, began, resp, err)
	if err != nil {
		err = causeOf(actx, err)
		return resNextSource, err.Error(), err
	}
	defer resp.Body.Close()
	exp := d.obj.Expect

	switch resp.StatusCode {
	case http.StatusNotModified:
		if off == 0 && d.stale != nil {
			return resNotModified, "", nil
		}
		return resNextSource, "unexpected 304", errors.New("unexpected 304 Not Modified")
	case http.StatusNotFound, http.StatusGone:
		return resNotFound, resp.Status, nil
	case http.StatusOK:
		total := resp.ContentLength
		if exp != nil && total >= 0 && total != exp.Size {
			return resMismatch, fmt.Sprintf("size %d != Manifest %d", total, exp.Size), nil
		}
		if off > 0 {
			// The source ignored the Range (or If-Range saw a change).
			if total >= 0 && size >= 0 && total != size {
				d.c.log.Info("upstream file changed size; restarting", "key", d.key, "url", src)
				d.reset()
			} else if ok, err := d.skipSame(actx, resp.Body, off); err != nil {
				err = causeOf(actx, err)
				return resNextSource, "restart: " + err.Error(), err
			} else if !ok {
				d.c.log.Info("upstream content changed; restarting", "key", d.key, "url", src)
				d.reset()
				return resRetry, "content changed", errors.New("upstream content changed during the download")
			}
		}
		d.setEntity(resp, total, src)
		return d.copyBody(actx, watchdog, resp.Body)
	case http.StatusPartialContent:
		start, end, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != off {
			return resNextSource, "bad Content-Range " + strconv.Quote(resp.Header.Get("Content-Range")),
				errors.New("upstream answered a different range")
		}
		if total < 0 {
			total = size
		}
		if exp != nil && total >= 0 && total != exp.Size {
			return resMismatch, fmt.Sprintf("size %d != Manifest %d", total, exp.Size), nil
		}
		if size >= 0 && total >= 0 && total != size {
			d.reset()
			return resRetry, "size changed", fmt.Errorf("upstream size changed from %d to %d", size, total)
		}
		if resp.ContentLength >= 0 && resp.ContentLength != end-start+1 {
			return resNextSource, "Content-Length does not match Content-Range", errors.New("inconsistent 206 answer")
		}
		d.setEntity(resp, total, src)
		return d.copyBody(actx, watchdog, resp.Body)
	default:
		return resNextSource, resp.Status, fmt.Errorf("HTTP %s", resp.Status)
	}
}

// causeOf prefers the cause of the attempt's cancellation (idle) to the
// generic error the client reports.
func causeOf(ctx context.Context, err error) error {
	if c := context.Cause(ctx); c != nil && !errors.Is(err, c) {
		return fmt.Errorf("%w (%v)", c, err)
	}
	return err
}

// parseContentRange parses "bytes START-END/TOTAL" (TOTAL may be "*":
// -1).
func parseContentRange(s string) (start, end, total int64, ok bool) {
	rest, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, 0, false
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	// RFC 9110: first-pos "-" last-pos "/" ( complete-length / "*" ), each
	// one or more digits (no sign: a negative length is refused).
	if !allDigits(a) || !allDigits(b) || (tot != "*" && !allDigits(tot)) {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	start, err1 = strconv.ParseInt(a, 10, 64)
	end, err2 = strconv.ParseInt(b, 10, 64)
	total = -1
	if tot != "*" {
		total, err3 = strconv.ParseInt(tot, 10, 64)
	}
	if err1 != nil || err2 != nil || err3 != nil || start < 0 || end < start || (total >= 0 && end >= total) {
		return 0, 0, 0, false
	}
	return start, end, total, true
}

// allDigits reports whether s is one or more ASCII digits.
func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// skipSame reads the first n bytes of a full answer and reports whether
// they equal what the file already holds.
func (d *download) skipSame(ctx context.Context, body io.Reader, n int64) (bool, error) {
	have := make([]byte, chunkSize)
	d.mu.Lock()
	f := d.file.f
	d.mu.Unlock()
	for pos := int64(0); pos < n; {
		want := min(int64(len(d.buf)), n-pos)
		if _, err := io.ReadFull(body, d.buf[:want]); err != nil {
			return false, err
		}
		metrics.UpstreamBytes.Add(float64(want))
		if _, err := f.ReadAt(have[:want], pos); err != nil {
			return false, err
		}
		if !bytes.Equal(have[:want], d.buf[:want]) {
			return false, nil
		}
		pos += want
	}
	return true, nil
}

// setEntity records what the answer says of the object and lets waiting
// clients start.
func (d *download) setEntity(resp *http.Response, total int64, src string) {
	d.mu.Lock()
	if exp := d.obj.Expect; total < 0 && exp != nil {
		total = exp.Size
	}
	d.size = total
	d.lastModified = resp.Header.Get("Last-Modified")
	d.etag = resp.Header.Get("ETag")
	d.validatorsSrc = src
	if t, err := http.ParseTime(d.lastModified); err == nil {
		d.modTime = t
	} else if d.modTime.IsZero() {
		d.modTime = time.Now().Truncate(time.Second)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		d.ctype = ct
	}
	d.broadcast()
	d.mu.Unlock()
	d.markReady()
}

// copyBody appends the answer's body to the file.
func (d *download) copyBody(ctx context.Context, watchdog *time.Timer, body io.Reader) (attemptResult, string, error) {
	d.mu.Lock()
	f, epoch := d.file.f, d.epoch
	d.mu.Unlock()
	progress := int64(0)
	for {
		n, rerr := body.Read(d.buf)
		if n > 0 {
			watchdog.Reset(d.c.idle)
			metrics.UpstreamBytes.Add(float64(n))
			d.mu.Lock()
			off, size := d.written, d.size
			d.mu.Unlock()
			if size >= 0 && off+int64(n) > size {
				d.reset()
				return resNextSource, "more bytes than announced", fmt.Errorf("upstream sent more than %d bytes", size)
			}
			if _, err := f.WriteAt(d.buf[:n], off); err != nil {
				return resLocal, "local write: " + err.Error(), err
			}
			if d.b2 != nil {
				d.b2.Write(d.buf[:n])
				d.s512.Write(d.buf[:n])
			}
			d.mu.Lock()
			if d.epoch == epoch {
				d.written = off + int64(n)
			}
			d.broadcast()
			d.mu.Unlock()
			progress += int64(n)
		}
		if rerr == io.EOF {
			d.mu.Lock()
			written, size := d.written, d.size
			if size < 0 {
				d.size = written // no announced length: the end is the end
			}
			d.mu.Unlock()
			if size >= 0 && written < size {
				return resRetry, fmt.Sprintf("body ended at %d of %d bytes", written, size),
					fmt.Errorf("upstream body ended at %d of %d bytes", written, size)
			}
			return resComplete, "", nil
		}
		if rerr != nil {
			err := causeOf(ctx, rerr)
			if progress > 0 {
				return resRetry, "transfer broke: " + err.Error(), err
			}
			return resNextSource, "transfer broke: " + err.Error(), err
		}
	}
}

func (d *download) resetHashes() {
	d.b2, d.s512 = nil, nil
	if exp := d.obj.Expect; exp != nil && (exp.BLAKE2B != nil || exp.SHA512 != nil) {
		d.b2, _ = blake2b.New512(nil)
		d.s512 = sha512.New()
	}
}

// reset drops the data received so far (a changed or corrupt upstream
// file): readers that already passed bytes on fail, the others wait for
// the new data.
func (d *download) reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.written > 0 {
		d.taintLocked("data discarded")
	}
	d.epoch++
	d.written = 0
	d.size = -1
	d.etag, d.lastModified, d.validatorsSrc = "", "", ""
	d.resetHashes()
	if d.file != nil {
		if err := d.file.f.Truncate(0); err != nil {
			d.c.log.Warn("cannot truncate temporary file", "key", d.key, "err", err)
		}
	}
	d.broadcast()
}

// taintLocked records that bytes of this download that were never
// verified may have reached clients; d.mu held.
func (d *download) taintLocked(why string) {
	d.c.taint.add(d.key)
	d.c.log.Info("unverified bytes were handed out; Range continuations of this object need If-Range with its ETag",
		"key", d.key, "why", why, "bytes", d.written)
}

// verify checks the complete data against the Manifest entry; it returns
// why it does not match, or "".
func (d *download) verify() string {
	d.mu.Lock()
	written, size := d.written, d.size
	d.mu.Unlock()
	if size >= 0 && written != size {
		return fmt.Sprintf("received %d of %d bytes", written, size)
	}
	exp := d.obj.Expect
	if exp == nil {
		return ""
	}
	if written != exp.Size {
		return fmt.Sprintf("size %d != Manifest %d", written, exp.Size)
	}
	if exp.BLAKE2B != nil && !bytes.Equal(d.b2.Sum(nil), exp.BLAKE2B) {
		return "BLAKE2B differs from the Manifest"
	}
	if exp.SHA512 != nil && !bytes.Equal(d.s512.Sum(nil), exp.SHA512) {
		return "SHA512 differs from the Manifest"
	}
	return ""
}

// commit syncs the verified file, renames it into place and lets readers
// read its last bytes.
func (d *download) commit(ctx context.Context) error {
	d.mu.Lock()
	f, modTime, lastMod := d.file.f, d.modTime, d.lastModified
	m := meta{ETag: d.etag, LastModified: d.lastModified, ContentType: d.ctype, Fetched: d.c.now()}
	d.mu.Unlock()
	if d.c.remote != nil {
		return d.commitRemote(ctx, f, m)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	if lastMod != "" && !modTime.IsZero() {
		if err := d.c.store.root.Chtimes(d.tmp, modTime, modTime); err != nil {
			d.c.log.Warn("cannot set the file time", "key", d.key, "err", err)
		}
	}
	if !strings.HasPrefix(d.key, DistfilesPrefix) || d.obj.Volatile {
		// Written first: an object without its metadata would only cost a
		// revalidation, metadata without an object nothing.
		if err := d.c.store.writeMeta(d.key, m); err != nil {
			d.c.log.Warn("cannot save object metadata", "key", d.key, "err", err)
		}
	}
	if err := d.c.store.commit(d.tmp, d.key); err != nil {
		return err
	}
	d.mu.Lock()
	d.committed = true
	d.size = d.written
	d.broadcast()
	d.mu.Unlock()
	return nil
}

// commitRemote stores the verified file on the remote backend (an atomic
// PutObject or multipart upload) and lets readers read its last bytes.
func (d *download) commitRemote(ctx context.Context, f *os.File, m meta) error {
	d.mu.Lock()
	in := objstore.Info{Key: d.key, Size: d.written, ContentType: d.ctype, ETag: d.etag, LastModified: d.lastModified}
	if d.lastModified != "" {
		in.ModTime = d.modTime
	}
	d.mu.Unlock()
	if err := d.c.remote.Commit(ctx, d.key, f, in); err != nil {
		return err
	}
	d.c.hotKeep(d)
	if d.obj.Volatile || !strings.HasPrefix(d.key, DistfilesPrefix) {
		if err := d.c.store.writeMeta(d.key, m); err != nil {
			d.c.log.Warn("cannot save object metadata", "key", d.key, "err", err)
		}
	}
	d.mu.Lock()
	d.committed = true
	d.size = d.written
	d.broadcast()
	d.mu.Unlock()
	return nil
}

// coordinate makes sure one node of the cluster downloads the object:
// it returns served when the object is (or becomes) complete on the
// remote backend, else the lease this node took to download it (nil
// when the backend has no leases). While another node holds the lease it
// polls, with backoff, until the object appears or the lease expires
// (its holder died: this node takes it over); ctx bounds the wait.
func (d *download) coordinate(ctx context.Context, usePeer bool) (*objstore.Lease, bool, string, error) {
	lr, ok := d.c.remote.(objstore.Leaser)
	if !ok {
		return nil, false, "", nil
	}
	wait := 50 * time.Millisecond
	logged := false
	for {
		if d.remoteComplete(ctx) {
			return nil, true, "", nil
		}
		l, li, err := lr.AcquireLease(ctx, d.key, d.c.node, d.c.peer, d.c.leaseTTL)
		if err == nil {
			if d.remoteComplete(ctx) {
				// Committed by the previous holder just before it let go.
				d.releaseLease(l)
				return nil, true, "", nil
			}
			return l, false, "", nil
		}
		if !errors.Is(err, objstore.ErrLeaseHeld) {
			return nil, false, "", err
		}
		if name, ok := strings.CutPrefix(d.key, DistfilesPrefix); ok && usePeer && d.c.peers[strings.TrimRight(li.Peer, "/")] && li.Peer != d.c.peer {
			return nil, false, strings.TrimRight(li.Peer, "/") + "/distfiles/" + escapePath(name), nil
		}
		if !logged {
			d.c.log.Info("another node is downloading; waiting for it", "key", d.key, "holder", li.Holder, "expires", li.Expires)
			logged = true
		}
		sleepCtx(ctx, wait)
		if ctx.Err() != nil {
			return nil, false, "", context.Cause(ctx)
		}
		wait = min(wait*2, 2*time.Second)
	}
}

// remoteComplete reports whether the object is on the remote backend
// (with the Manifest's size, when there is an entry).
func (d *download) remoteComplete(ctx context.Context) bool {
	in, err := d.c.remote.Stat(ctx, d.key)
	return err == nil && (d.obj.Expect == nil || in.Size == d.obj.Expect.Size)
}

// errLeaseLost is the cause of a download stopped because its lease could
// not be renewed (another node may have taken it over).
var errLeaseLost = errors.New("cluster lease lost")

// keepLease renews the lease every third of its time while the download
// runs; a failed renewal cancels the returned context. stop ends the
// renewals and releases the lease.
func (d *download) keepLease(ctx context.Context, l *objstore.Lease) (context.Context, func()) {
	lctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(d.c.leaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-lctx.Done():
				return
			case <-t.C:
				rctx, rcancel := context.WithTimeout(lctx, d.c.leaseTTL/3)
				err := l.Renew(rctx)
				rcancel()
				if err != nil {
					d.c.log.Warn("cannot renew the cluster lease; stopping the download", "key", d.key, "err", err)
					cancel(fmt.Errorf("%w: %w", errLeaseLost, err))
					return
				}
			}
		}
	}()
	return lctx, func() {
		close(done)
		<-exited
		cancel(nil)
		d.releaseLease(l)
	}
}

func (d *download) releaseLease(l *objstore.Lease) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.Release(ctx); err != nil {
		d.c.log.Warn("cannot release the cluster lease", "key", d.key, "err", err)
	}
}

// commitPeer ends a download streamed from the node that holds the lease:
// that node uploads the object before it sends the last byte, so it is in
// the bucket; if not (that node failed at the very end), this node
// uploads its verified copy.
func (d *download) commitPeer(ctx context.Context) error {
	if !d.remoteComplete(ctx) {
		d.mu.Lock()
		m := meta{ETag: d.etag, LastModified: d.lastModified, ContentType: d.ctype, Fetched: d.c.now()}
		f := d.file.f
		d.mu.Unlock()
		return d.commitRemote(ctx, f, m)
	}
	d.c.hotKeep(d)
	d.mu.Lock()
	d.committed = true
	d.size = d.written
	d.broadcast()
	d.mu.Unlock()
	return nil
}
