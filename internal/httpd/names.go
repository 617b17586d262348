package httpd

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"golang.org/x/crypto/blake2b"
)

// splitPath splits an escaped URL path into its percent-decoded segments
// and refuses anything that could name a file outside the intended
// directory: "." and ".." segments (also encoded, "%2e%2e"), an encoded
// slash inside a segment ("%2f"), backslashes, NUL and other control
// characters, and empty segments ("//"). A trailing slash yields a last
// empty segment, which callers may treat as a directory.
func splitPath(escaped string) ([]string, error) {
	if !strings.HasPrefix(escaped, "/") {
		return nil, fmt.Errorf("path %q is not absolute", escaped)
	}
	raw := strings.Split(escaped[1:], "/")
	if len(raw) == 1 && raw[0] == "" {
		return nil, nil
	}
	segs := make([]string, 0, len(raw))
	for i, r := range raw {
		seg, err := url.PathUnescape(r)
		if err != nil {
			return nil, fmt.Errorf("bad escape in %q", r)
		}
		if seg == "" && i == len(raw)-1 {
			segs = append(segs, "")
			break
		}
		if err := checkSegment(seg); err != nil {
			return nil, err
		}
		segs = append(segs, seg)
	}
	return segs, nil
}

// errTraversal is returned for names that try to leave their directory.
var errTraversal = errors.New("path traversal refused")

// checkSegment refuses one decoded path segment that is not a plain name.
func checkSegment(seg string) error {
	switch {
	case seg == "":
		return fmt.Errorf("empty path segment: %w", errTraversal)
	case seg == "." || seg == "..":
		return fmt.Errorf("segment %q: %w", seg, errTraversal)
	case strings.ContainsAny(seg, "/\\"):
		return fmt.Errorf("segment %q holds a slash or backslash: %w", seg, errTraversal)
	}
	for _, c := range []byte(seg) {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("segment %q holds a control character: %w", seg, errTraversal)
		}
	}
	return nil
}

// hashDir is the GLEP 75 "filename-hash BLAKE2B 8" directory of a
// distfile name: the first two hex digits of BLAKE2b-512 of the name.
func hashDir(name string) string {
	sum := blake2b.Sum512([]byte(name))
	return hex.EncodeToString(sum[:1])
}

// downloadSuffix is what Portage appends to ${FILE} while it downloads
// (fetch.py's _download_suffix); fetch-through strips it.
const downloadSuffix = ".__download__"
