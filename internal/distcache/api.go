// Package distcache is the distfiles cache: the on-disk store (complete
// files only, written through temporary files and renamed into place), the
// coalescing fetcher (one upstream download per object, streamed to every
// client that asks while it runs, resumed with Range requests after a
// break, verified against Manifest digests before it is kept) and the
// upstream mirror set (each mirror's GLEP 75 layout). Every Body has a
// strong ETag, and the keys of downloads that handed out unverified bytes
// and were then discarded are remembered (Body.Tainted), so that the HTTP
// side never continues a client's corrupt head with good bytes. Distfile
// waits for a Verifier that is still building its index (IndexWaiter);
// Store.VerifyDistfiles re-hashes the cache and quarantines mismatches.
// The HTTP routes that use it live in internal/httpd.
package distcache

import (
	"errors"

	"github.com/lanmirror/lanmirror/internal/gentoo"
)

// Keys name objects in the Store: slash-separated relative paths.
// Distfiles are "distfiles/<name>" (flat, one namespace for the mirror
// paths, the proxy and imports); other proxied URLs are
// "urls/<host>/<path>"; cached binhost files are "binhost/<path>".
const (
	DistfilesPrefix = "distfiles/"
	URLsPrefix      = "urls/"
	BinhostPrefix   = "binhost/"
)

// Verifier tells what the tree says a distfile must be. gentoo's DIST
// index implements it; a nil Verifier (or an unknown name) means the file
// is checked against its announced size only.
type Verifier interface {
	Lookup(name string) (gentoo.Dist, bool)
}

// Outcome says how a request was answered, for the access log and metrics.
type Outcome string

// Outcomes.
const (
	Hit         Outcome = "HIT"         // served from the cache
	Miss        Outcome = "MISS"        // this request started the download
	Join        Outcome = "JOIN"        // joined a download already running
	Revalidated Outcome = "REVALIDATED" // volatile object confirmed fresh upstream
)

// Errors the fetcher returns; the HTTP side maps them to statuses.
var (
	// ErrNotFound: every source answered 404 (HTTP 404).
	ErrNotFound = errors.New("not found on any upstream")
	// ErrCorrupt: the download did not match the Manifest (HTTP 502).
	ErrCorrupt = errors.New("download does not match the Manifest")
	// ErrUpstream: sources failed otherwise (HTTP 502; 504 when the cause
	// is a timeout, see errors.Is(err, context.DeadlineExceeded)).
	ErrUpstream = errors.New("upstream failed")
	// ErrBadName: the key or name is not acceptable (traversal, empty).
	ErrBadName = errors.New("bad name")
	// ErrIndexNotReady: the tree's DIST index is still being built (or
	// cannot be built), so a distfile cannot be verified yet (HTTP 503
	// with Retry-After).
	ErrIndexNotReady = errors.New("the DIST index of the tree is not ready")
)
