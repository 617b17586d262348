package httpd

import (
	"net/url"
	"strings"
	"testing"
)

func TestSplitPath(t *testing.T) {
	for in, want := range map[string]string{
		"/":                      "",
		"/distfiles/foo.tar.gz":  "distfiles|foo.tar.gz",
		"/distfiles/ab/a%20b":    "distfiles|ab|a b",
		"/All/":                  "All|",
		"/distfiles/a%2Bb%25c.x": "distfiles|a+b%c.x",
	} {
		segs, err := splitPath(in)
		if err != nil || strings.Join(segs, "|") != want {
			t.Errorf("splitPath(%q) = %q, %v; want %q", in, segs, err, want)
		}
	}
	for _, in := range []string{"/a/../b", "/a/%2e%2e/b", "/a/%2E%2e", "/a%2fb", "/a%5cb", "/a\\b", "/a%00b", "//a", "/a//b", "/a/./b", "/a%zz", "a", "/a%0ab"} {
		if segs, err := splitPath(in); err == nil {
			t.Errorf("splitPath(%q) = %q, want an error", in, segs)
		}
	}
}

func FuzzSplitPath(f *testing.F) {
	for _, s := range []string{"/distfiles/ab/x", "/a/%2e%2e/b", "/a%2fb", "/All/", "/x%00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		segs, err := splitPath(in)
		if err != nil {
			return
		}
		for i, s := range segs {
			if s == "" && i != len(segs)-1 {
				t.Fatalf("%q: empty inner segment", in)
			}
			if s == "." || s == ".." || strings.ContainsAny(s, "/\\\x00") {
				t.Fatalf("%q: unsafe segment %q", in, s)
			}
		}
	})
}

func TestParseRange(t *testing.T) {
	type res struct {
		start, n int64
		r        rangeResult
	}
	for _, tc := range []struct {
		spec string
		size int64
		want res
	}{
		{"bytes=0-99", 1000, res{0, 100, rangeOK}},
		{"bytes=900-", 1000, res{900, 100, rangeOK}},
		{"bytes=900-5000", 1000, res{900, 100, rangeOK}},
		{"bytes=-100", 1000, res{900, 100, rangeOK}},
		{"bytes=-5000", 1000, res{0, 1000, rangeOK}},
		{"bytes=1000-", 1000, res{0, 0, rangeUnsatisfiable}},
		{"bytes=-0", 1000, res{0, 0, rangeUnsatisfiable}},
		{"bytes=0-", 0, res{0, 0, rangeUnsatisfiable}},
		{"bytes=5-1", 1000, res{0, 0, rangeIgnore}},
		{"bytes=0-1,5-6", 1000, res{0, 0, rangeIgnore}},
		{"items=0-1", 1000, res{0, 0, rangeIgnore}},
		{"bytes=x-", 1000, res{0, 0, rangeIgnore}},
	} {
		s, n, r := parseRange(tc.spec, tc.size)
		if (res{s, n, r}) != tc.want {
			t.Errorf("parseRange(%q, %d) = %d %d %d, want %v", tc.spec, tc.size, s, n, r, tc.want)
		}
	}
}

func FuzzParseRange(f *testing.F) {
	f.Add("bytes=0-99", int64(1000))
	f.Add("bytes=-5", int64(3))
	f.Add("bytes=9223372036854775807-", int64(10))
	f.Fuzz(func(t *testing.T, spec string, size int64) {
		if size < 0 {
			return
		}
		s, n, r := parseRange(spec, size)
		if r == rangeOK && (s < 0 || n <= 0 || s+n > size) {
			t.Fatalf("parseRange(%q, %d) = %d+%d out of bounds", spec, size, s, n)
		}
	})
}

func TestDistfilePathAndURLKey(t *testing.T) {
	for in, want := range map[string]string{
		"/distfiles/foo.tar.gz":                  "foo.tar.gz",
		"/gentoo/distfiles/80/which-2.23.tar.gz": "which-2.23.tar.gz",
		"/distfiles/ab/cd/x.zip":                 "x.zip",
		"/pub/distfiles/layout.conf":             "layout.conf",
		"/distfiles/":                            "",
		"/foo/bar.tar.gz":                        "",
		"/distfiles/notahash/x.zip":              "",
	} {
		segs, _ := splitPath(in)
		got, ok := distfilePath(segs)
		if got != want || ok != (want != "") {
			t.Errorf("distfilePath(%q) = %q %v, want %q", in, got, ok, want)
		}
	}
	for in, want := range map[string]string{
		"http://Example.org/a/b.txt":      "urls/example.org/a/b.txt",
		"http://example.org:8080/a":       "urls/example.org_8080/a",
		"https://example.org:443/a":       "urls/example.org/a",
		"http://example.org/":             "urls/example.org/@index",
		"http://example.org":              "urls/example.org/@index",
		"http://example.org/d/":           "urls/example.org/d/@index",
		"http://example.org/.hidden/x":    "urls/example.org/@.hidden/x",
		"http://example.org/q?a=1":        "urls/example.org/q@q",
		"http://example.org/?a=1":         "urls/example.org/@index@q",
		"http://example.org/with%20space": "urls/example.org/with space",
	} {
		u, _ := url.Parse(in)
		segs, err := splitPath(pathOrSlash(u.EscapedPath()))
		if err != nil {
			t.Fatal(err)
		}
		got := urlKey(u, segs)
		if !strings.HasPrefix(got, want) || (!strings.Contains(in, "?") && got != want) {
			t.Errorf("urlKey(%q) = %q, want %q", in, got, want)
		}
	}
}
