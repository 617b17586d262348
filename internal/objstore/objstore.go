// Package objstore is where the distfiles cache keeps its complete objects
// when they do not live on the local disk: the Backend interface the
// cache uses (the local-disk distcache.Store implements it too, see
// distcache.(*Store).Backend), its S3 implementation for any
// S3-compatible object storage (AWS S3, Ceph RGW, MinIO, Garage,
// versitygw...), and the lease objects by which several lanmirror nodes
// sharing one bucket download a file from upstream only once.
package objstore

import (
	"context"
	"errors"
	"io"
	"os"
	"time"
)

// Info describes a complete object.
type Info struct {
	// Key is the object's key in the cache (e.g. "distfiles/foo.tar.gz"),
	// without any backend prefix.
	Key  string
	Size int64
	// ModTime is the upstream Last-Modified time when known, else when
	// the object was stored.
	ModTime time.Time
	// Stored is when the object was written to the backend.
	Stored time.Time
	// ContentType, ETag and LastModified are what upstream said of the
	// object ("" when unknown); ETag and LastModified serve revalidation.
	ContentType  string
	ETag         string
	LastModified string
}

// Backend stores complete objects. Implementations are safe for
// concurrent use. An object appears only whole (Commit is atomic): a
// reader never sees a partial object.
type Backend interface {
	// Stat describes the object key; the error wraps fs.ErrNotExist when
	// there is none.
	Stat(ctx context.Context, key string) (Info, error)
	// Open streams the object from byte off to its end (a range read: the
	// object is never copied whole into memory). The error wraps
	// fs.ErrNotExist when there is no such object.
	Open(ctx context.Context, key string, off int64) (io.ReadCloser, error)
	// Commit stores the complete, verified local file src (its first
	// info.Size bytes, read with ReadAt) as object key, replacing any
	// previous one. info gives the metadata to keep.
	Commit(ctx context.Context, key string, src *os.File, info Info) error
	// Delete removes the object; a missing object is not an error.
	Delete(ctx context.Context, key string) error
	// List returns the objects whose keys start with prefix, sorted.
	List(ctx context.Context, prefix string) ([]Info, error)
}

// ErrLeaseHeld is returned when another holder has a live lease.
var ErrLeaseHeld = errors.New("objstore: lease held by another node")

// Leaser is a Backend whose nodes coordinate downloads with leases (S3).
type Leaser interface {
	AcquireLease(ctx context.Context, key, holder, peer string, ttl time.Duration) (*Lease, LeaseInfo, error)
}
