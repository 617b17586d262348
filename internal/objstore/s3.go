package objstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Config configures an S3 backend.
type S3Config struct {
	// URL is the store: s3://BUCKET[/PREFIX].
	URL string
	// Endpoint is the S3 server, http(s)://host[:port]; empty means AWS
	// (https://s3.amazonaws.com). A custom endpoint uses path-style
	// bucket addressing.
	Endpoint string
	// Region is the bucket's region; empty: $AWS_REGION, else the
	// server's default.
	Region string
	// AccessKey and SecretKey, when both are set, are the credentials;
	// otherwise they come from the environment (AWS_ACCESS_KEY_ID,
	// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), then
	// ~/.aws/credentials (AWS_PROFILE), then the instance's IAM role.
	AccessKey, SecretKey string
	// Transport, when set, carries the requests (tests); nil: a default
	// transport that ignores proxy settings of the environment.
	Transport http.RoundTripper
}

// S3 is a Backend on a bucket of S3-compatible object storage. Objects
// are stored at PREFIX/<key>; lease objects at PREFIX/.leases/<key>.
type S3 struct {
	c      *minio.Client
	core   minio.Core
	bucket string
	prefix string // "" or ending in "/"
}

// ParseS3URL splits s3://BUCKET[/PREFIX] into the bucket and the key
// prefix ("" or ending in "/").
func ParseS3URL(s string) (bucket, prefix string, err error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "s3" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", "", fmt.Errorf("objstore: store %q: want s3://BUCKET[/PREFIX]", s)
	}
	prefix = strings.Trim(u.Path, "/")
	if prefix != "" {
		for _, seg := range strings.Split(prefix, "/") {
			if seg == "" || seg == "." || seg == ".." {
				return "", "", fmt.Errorf("objstore: store %q: bad prefix", s)
			}
		}
		prefix += "/"
	}
	return u.Host, prefix, nil
}

// NewS3 opens the S3 backend described by cfg. It does not contact the
// server; Check does.
func NewS3(cfg S3Config) (*S3, error) {
	bucket, prefix, err := ParseS3URL(cfg.URL)
	if err != nil {
		return nil, err
	}
	host, secure, lookup := "s3.amazonaws.com", true, minio.BucketLookupAuto
	if cfg.Endpoint != "" {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return nil, fmt.Errorf("objstore: endpoint %q: want http(s)://HOST[:PORT]", cfg.Endpoint)
		}
		host, secure, lookup = u.Host, u.Scheme == "https", minio.BucketLookupPath
	}
	region := cfg.Region
	if region == "" {
		region = os.Getenv("AWS_REGION")
	}
	var creds *credentials.Credentials
	if cfg.AccessKey != "" && cfg.SecretKey != "" {
		creds = credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, "")
	} else {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{},
			&credentials.FileAWSCredentials{},
			&credentials.IAM{},
		})
	}
	tr := cfg.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.Proxy = nil
		t.MaxIdleConnsPerHost = 64
		t.DisableCompression = true
		tr = t
	}
	c, err := minio.New(host, &minio.Options{
		Creds: creds, Secure: secure, Region: region, BucketLookup: lookup, Transport: tr,
	})
	if err != nil {
		return nil, fmt.Errorf("objstore: %w", err)
	}
	return &S3{c: c, core: minio.Core{Client: c}, bucket: bucket, prefix: prefix}, nil
}

// String names the store for logs.
func (s *S3) String() string { return "s3://" + s.bucket + "/" + s.prefix }

// Check verifies that the bucket exists and the credentials work.
func (s *S3) Check(ctx context.Context) error {
	ok, err := s.c.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("objstore: bucket %s: %w", s.bucket, err)
	}
	if !ok {
		return fmt.Errorf("objstore: bucket %s does not exist", s.bucket)
	}
	return nil
}

// User metadata kept on each object (x-amz-meta-*).
const (
	metaMtime        = "Lanmirror-Mtime"
	metaETag         = "Lanmirror-Etag"
	metaLastModified = "Lanmirror-Last-Modified"
)

func (s *S3) name(key string) string { return s.prefix + key }

// notFound maps S3's "no such object" answers to fs.ErrNotExist.
func notFound(key string, err error) error {
	r := minio.ToErrorResponse(err)
	if r.Code == "NoSuchKey" || r.Code == "NotFound" || r.StatusCode == http.StatusNotFound {
		return fmt.Errorf("objstore: %s: %w", key, fs.ErrNotExist)
	}
	return fmt.Errorf("objstore: %s: %w", key, err)
}

func (s *S3) info(key string, oi minio.ObjectInfo) Info {
	in := Info{
		Key: key, Size: oi.Size, ModTime: oi.LastModified, Stored: oi.LastModified,
		ContentType:  oi.ContentType,
		ETag:         oi.Metadata.Get("X-Amz-Meta-" + metaETag),
		LastModified: oi.Metadata.Get("X-Amz-Meta-" + metaLastModified),
	}
	if t, err := time.Parse(time.RFC3339Nano, oi.Metadata.Get("X-Amz-Meta-"+metaMtime)); err == nil {
		in.ModTime = t
	}
	if in.ContentType == "binary/octet-stream" || in.ContentType == "application/octet-stream" {
		in.ContentType = "" // the server's default, not upstream's word
	}
	return in
}

// Stat implements Backend.
func (s *S3) Stat(ctx context.Context, key string) (Info, error) {
	oi, err := s.c.StatObject(ctx, s.bucket, s.name(key), minio.StatObjectOptions{})
	if err != nil {
		return Info{}, notFound(key, err)
	}
	return s.info(key, oi), nil
}

// Open implements Backend with a ranged GetObject.
func (s *S3) Open(ctx context.Context, key string, off int64) (io.ReadCloser, error) {
	var opts minio.GetObjectOptions
	if off > 0 {
		if err := opts.SetRange(off, 0); err != nil {
			return nil, err
		}
	}
	rc, _, _, err := s.core.GetObject(ctx, s.bucket, s.name(key), opts)
	if err != nil {
		if minio.ToErrorResponse(err).Code == "InvalidRange" {
			return io.NopCloser(bytes.NewReader(nil)), nil // off at the end
		}
		return nil, notFound(key, err)
	}
	return rc, nil
}

// PartSize is the part size of multipart uploads (objects above it are
// uploaded in parts and appear only at CompleteMultipartUpload).
const PartSize = 16 << 20

// Commit implements Backend: one PutObject (multipart above PartSize,
// completed only once every part is stored; an upload that fails is
// aborted), so the object appears whole or not at all.
func (s *S3) Commit(ctx context.Context, key string, src *os.File, in Info) error {
	um := map[string]string{}
	if !in.ModTime.IsZero() {
		um[metaMtime] = in.ModTime.UTC().Format(time.RFC3339Nano)
	}
	if in.ETag != "" && isHeaderSafe(in.ETag) {
		um[metaETag] = in.ETag
	}
	if in.LastModified != "" && isHeaderSafe(in.LastModified) {
		um[metaLastModified] = in.LastModified
	}
	ct := in.ContentType
	if ct == "" || !isHeaderSafe(ct) {
		ct = "application/octet-stream"
	}
	_, err := s.c.PutObject(ctx, s.bucket, s.name(key), io.NewSectionReader(src, 0, in.Size), in.Size,
		minio.PutObjectOptions{ContentType: ct, UserMetadata: um, PartSize: PartSize, NumThreads: 2})
	if err != nil {
		return fmt.Errorf("objstore: put %s: %w", key, err)
	}
	return nil
}

func isHeaderSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// Delete implements Backend.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := s.c.RemoveObject(ctx, s.bucket, s.name(key), minio.RemoveObjectOptions{}); err != nil {
		if errors.Is(notFound(key, err), fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("objstore: delete %s: %w", key, err)
	}
	return nil
}

// List implements Backend. Lease objects are not listed. ModTime is the
// time the object was stored (listings carry no user metadata).
func (s *S3) List(ctx context.Context, prefix string) ([]Info, error) {
	var out []Info
	for oi := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true}) {
		if oi.Err != nil {
			return nil, fmt.Errorf("objstore: list %q: %w", prefix, oi.Err)
		}
		key := strings.TrimPrefix(oi.Key, s.prefix)
		if strings.HasPrefix(key, leasePrefix) || strings.HasSuffix(key, "/") {
			continue
		}
		out = append(out, Info{Key: key, Size: oi.Size, ModTime: oi.LastModified, Stored: oi.LastModified})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Leases.
//
// A lease on a key is the object PREFIX/.leases/<key>, a small JSON
// document naming its holder and when it expires. It is created with a
// conditional write (If-None-Match: *), so of several nodes asking at once
// exactly one gets it; an expired lease (its holder died) is taken over
// with If-Match on the ETag read, so again only one node wins; the holder
// renews it (If-Match on its own ETag) while it works and deletes it at
// the end. Expiry compares the holder's clock with the reader's: nodes
// need roughly synchronised clocks (NTP), well within the lease time.

const leasePrefix = ".leases/"

// LeaseInfo is what a lease object says.
type LeaseInfo struct {
	Holder  string    `json:"holder"`
	Peer    string    `json:"peer,omitempty"` // the holder's HTTP base URL, if it gave one
	Expires time.Time `json:"expires"`
	Nonce   string    `json:"nonce"` // makes every write's ETag differ
}

// Lease is a lease this process holds.
type Lease struct {
	s    *S3
	key  string
	etag string
	info LeaseInfo
	ttl  time.Duration
}

func (s *S3) putLease(ctx context.Context, key string, li LeaseInfo, match, noneMatch string) (string, error) {
	var b [8]byte
	rand.Read(b[:])
	li.Nonce = hex.EncodeToString(b[:])
	data, err := json.Marshal(li)
	if err != nil {
		return "", err
	}
	opts := minio.PutObjectOptions{ContentType: "application/json", DisableMultipart: true}
	if match != "" {
		opts.SetMatchETag(match)
	}
	if noneMatch != "" {
		opts.SetMatchETagExcept(noneMatch)
	}
	ui, err := s.c.PutObject(ctx, s.bucket, s.name(leasePrefix+key), bytes.NewReader(data), int64(len(data)), opts)
	if err != nil {
		return "", err
	}
	return ui.ETag, nil
}

// conflict reports whether a conditional write lost.
func conflict(err error) bool {
	r := minio.ToErrorResponse(err)
	return r.StatusCode == http.StatusPreconditionFailed || r.StatusCode == http.StatusConflict ||
		r.Code == "PreconditionFailed" || r.Code == "ConditionalRequestConflict"
}

// ReadLease returns the lease on key and its ETag; the error wraps
// fs.ErrNotExist when there is none.
func (s *S3) ReadLease(ctx context.Context, key string) (LeaseInfo, string, error) {
	rc, oi, _, err := s.core.GetObject(ctx, s.bucket, s.name(leasePrefix+key), minio.GetObjectOptions{})
	if err != nil {
		return LeaseInfo{}, "", notFound(leasePrefix+key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 64<<10))
	if err != nil {
		return LeaseInfo{}, "", fmt.Errorf("objstore: read lease %s: %w", key, err)
	}
	var li LeaseInfo
	if err := json.Unmarshal(data, &li); err != nil {
		// A damaged lease counts as expired.
		return LeaseInfo{}, oi.ETag, nil
	}
	return li, oi.ETag, nil
}

// AcquireLease takes the lease on key for ttl, as holder (peer: the
// holder's HTTP base URL, may be ""). When another node holds a live
// lease it returns ErrLeaseHeld and what that lease says.
func (s *S3) AcquireLease(ctx context.Context, key, holder, peer string, ttl time.Duration) (*Lease, LeaseInfo, error) {
	for range 3 {
		li := LeaseInfo{Holder: holder, Peer: peer, Expires: time.Now().Add(ttl)}
		etag, err := s.putLease(ctx, key, li, "", "*")
		if err == nil {
			return &Lease{s: s, key: key, etag: etag, info: li, ttl: ttl}, li, nil
		}
		if !conflict(err) {
			return nil, LeaseInfo{}, fmt.Errorf("objstore: create lease %s: %w", key, err)
		}
		cur, curTag, err := s.ReadLease(ctx, key)
		if errors.Is(err, fs.ErrNotExist) {
			continue // released meanwhile: try again
		}
		if err != nil {
			return nil, LeaseInfo{}, err
		}
		if time.Now().Before(cur.Expires) {
			return nil, cur, ErrLeaseHeld
		}
		// Expired: take it over, unless another node does first.
		li.Expires = time.Now().Add(ttl)
		etag, err = s.putLease(ctx, key, li, curTag, "")
		if err == nil {
			return &Lease{s: s, key: key, etag: etag, info: li, ttl: ttl}, li, nil
		}
		if !conflict(err) && !errors.Is(notFound(key, err), fs.ErrNotExist) {
			return nil, LeaseInfo{}, fmt.Errorf("objstore: take over lease %s: %w", key, err)
		}
	}
	return nil, LeaseInfo{}, ErrLeaseHeld
}

// Renew extends the lease by its ttl from now; an error means the lease
// is lost (taken over after it expired) or the server cannot be reached.
func (l *Lease) Renew(ctx context.Context) error {
	li := l.info
	li.Expires = time.Now().Add(l.ttl)
	etag, err := l.s.putLease(ctx, l.key, li, l.etag, "")
	if err != nil {
		return fmt.Errorf("objstore: renew lease %s: %w", l.key, err)
	}
	l.etag, l.info = etag, li
	return nil
}

// Release deletes the lease if it is still this holder's.
func (l *Lease) Release(ctx context.Context) error {
	oi, err := l.s.c.StatObject(ctx, l.s.bucket, l.s.name(leasePrefix+l.key), minio.StatObjectOptions{})
	if err != nil {
		return nil // gone
	}
	if oi.ETag != l.etag {
		return nil // taken over
	}
	if err := l.s.c.RemoveObject(ctx, l.s.bucket, l.s.name(leasePrefix+l.key), minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("objstore: release lease %s: %w", l.key, err)
	}
	return nil
}
