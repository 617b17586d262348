package distcache

import (
	"fmt"
	"strings"
)

// Directory names below the store root that are not objects.
const (
	partialDir    = ".partial"   // downloads and copies in progress
	stateDir      = "state"      // served-time index, revalidation metadata
	quarantineDir = "quarantine" // cached files that failed re-verification
)

// CheckKey reports whether key is acceptable as a Store key: a relative,
// slash-separated path with no empty, "." or ".." segment, no control
// characters (NUL, newline...), no backslash, and not below one of the
// store's own directories (".partial", "state", "quarantine"). The error wraps
// ErrBadName.
func CheckKey(key string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w: key %q: %s", ErrBadName, key, why)
	}
	if key == "" {
		return bad("empty")
	}
	if len(key) > 4096 {
		return bad("too long")
	}
	if key[0] == '/' {
		return bad("absolute path")
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x20 || c == 0x7f {
			return bad("control character")
		} else if c == '\\' {
			return bad("backslash")
		}
	}
	segs := strings.Split(key, "/")
	for _, s := range segs {
		switch s {
		case "":
			return bad("empty path segment")
		case ".", "..":
			return bad("dot segment")
		}
		if len(s) > 255 {
			return bad("path segment too long")
		}
	}
	if segs[0] == partialDir || segs[0] == stateDir || segs[0] == quarantineDir {
		return bad("reserved directory")
	}
	return nil
}

// CheckName reports whether name is acceptable as a distfile name (one
// path segment; the rules of CheckKey otherwise). The error wraps
// ErrBadName.
func CheckName(name string) error {
	if strings.Contains(name, "/") {
		return fmt.Errorf("%w: distfile name %q contains a slash", ErrBadName, name)
	}
	if err := CheckKey(DistfilesPrefix + name); err != nil {
		return fmt.Errorf("%w: distfile name %q", ErrBadName, name)
	}
	return nil
}
