package distcache

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"

	"github.com/lanmirror/lanmirror/internal/gentoo"
)

// Entity tags. Every Body has a strong ETag naming the exact bytes it
// serves, so that a client continuing a transfer with Range and If-Range
// gets a 206 only when its head came from the same content:
//
//   - a complete object whose Manifest entry is known: "blake2b-<hex>"
//     (the first 128 bits of the Manifest's BLAKE2B, else of its SHA512
//     as "sha512-<hex>"), the same on every server and after every
//     download of it;
//   - any other complete object: "f-<size>-<mtime>-<file id>", the
//     identity of the stored file (a new download or import is a new
//     file, hence a new tag);
//   - a body following a download in progress: "dl-<random>-<epoch>",
//     unique to that download's data, never equal to a complete object's
//     tag: bytes a client took from a download that was then discarded
//     (digest mismatch) can never be continued from other content.

// manifestETag is the tag of the content a Manifest entry describes; ""
// when the entry has no digest.
func manifestETag(d *gentoo.Dist) string {
	switch {
	case d == nil:
		return ""
	case len(d.BLAKE2B) >= 16:
		return `"blake2b-` + hex.EncodeToString(d.BLAKE2B[:16]) + `"`
	case len(d.SHA512) >= 16:
		return `"sha512-` + hex.EncodeToString(d.SHA512[:16]) + `"`
	}
	return ""
}

// storedETag is the tag of a complete object: the Manifest's when known,
// else the stored file's identity.
func storedETag(expect *gentoo.Dist, fi fs.FileInfo) string {
	if t := manifestETag(expect); t != "" && fi.Size() == expect.Size {
		return t
	}
	return fmt.Sprintf(`"f-%x-%x-%x"`, fi.Size(), fi.ModTime().UnixNano(), fileID(fi))
}

// newDownloadID returns a random identifier for a download's tags.
func newDownloadID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// downloadETag is the tag of a download's data generation; d.mu held.
func (d *download) etagLocked() string {
	return fmt.Sprintf(`"dl-%s-%d"`, d.id, d.epoch)
}
