package distcache

import (
	"path"
	"strings"
	"testing"
)

// FuzzCheckKey: an accepted key is clean, relative and stays below the
// store root, never in the store's own directories.
func FuzzCheckKey(f *testing.F) {
	for _, s := range []string{"distfiles/a.tar.gz", "../x", "a//b", "urls/h/.well-known/x", "state/served", "a/./b", "a\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if CheckKey(key) != nil {
			return
		}
		if path.Clean(key) != key || path.IsAbs(key) || key == ".." || strings.HasPrefix(key, "../") {
			t.Fatalf("accepted unclean key %q", key)
		}
		first, _, _ := strings.Cut(key, "/")
		if first == partialDir || first == stateDir {
			t.Fatalf("accepted reserved key %q", key)
		}
		if strings.ContainsAny(key, "\x00\n\r\\") {
			t.Fatalf("accepted key with control or backslash %q", key)
		}
	})
}

// FuzzParseContentRange: accepted ranges are consistent.
func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-9/10", "bytes 5-9/*", "bytes 9-5/10", "bytes 0-10/10", "bytes -1-2/3", "items 0-1/2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, end, total, ok := parseContentRange(s)
		if !ok {
			return
		}
		if start < 0 || end < start || total < -1 || (total >= 0 && end >= total) {
			t.Fatalf("%q -> %d-%d/%d", s, start, end, total)
		}
	})
}

func TestParseContentRange(t *testing.T) {
	cases := []struct {
		in                string
		start, end, total int64
		ok                bool
	}{
		{"bytes 0-9/10", 0, 9, 10, true},
		{"bytes 100-199/*", 100, 199, -1, true},
		{"bytes 5-4/10", 0, 0, 0, false},
		{"bytes 0-10/10", 0, 0, 0, false},
		{"bytes */10", 0, 0, 0, false},
		{"bytes 0-0/-10", 0, 0, 0, false}, // found by FuzzParseContentRange
		{"bytes +0-9/10", 0, 0, 0, false},
		{"", 0, 0, 0, false},
	}
	for _, c := range cases {
		s, e, tot, ok := parseContentRange(c.in)
		if ok != c.ok || (ok && (s != c.start || e != c.end || tot != c.total)) {
			t.Errorf("parseContentRange(%q) = %d %d %d %v", c.in, s, e, tot, ok)
		}
	}
}
