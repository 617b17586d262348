package filter

import (
	"path"
	"testing"
)

func TestPortageExcludes(t *testing.T) {
	for _, proto := range []int{27, 28, 29, 30, 31} {
		var rules []string
		for _, p := range []string{"/distfiles", "/local", "/packages", "/.git"} {
			if proto >= 29 {
				rules = append(rules, "- "+p)
			} else {
				rules = append(rules, p)
			}
		}
		r, err := Parse(rules, proto)
		if err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name string
			dir  bool
			excl bool
		}{
			{"distfiles", true, true},
			{"distfiles", false, true},
			{"local", true, true},
			{".git", true, true},
			{"app-misc/distfiles", true, false},
			{"app-misc/foo/foo-1.ebuild", false, false},
			{"metadata/timestamp.chk", false, false},
		}
		for _, c := range cases {
			if got := r.Excluded(c.name, c.dir); got != c.excl {
				t.Errorf("proto %d: Excluded(%q) = %v, want %v", proto, c.name, got, c.excl)
			}
		}
	}
}

func TestWildcards(t *testing.T) {
	r, err := Parse([]string{"+ keep.o", "- *.o", "- tmp/", "- a/**/z", "- file?.txt", "- [ab]x", "- /top/*/deep", "- cache/***"}, 31)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		dir  bool
		excl bool
	}{
		{"x/y/keep.o", false, false},
		{"x/y/foo.o", false, true},
		{"tmp", true, true},
		{"tmp", false, false},
		{"q/tmp", true, true},
		{"a/b/c/z", false, true},
		{"a/z", false, false},
		{"file1.txt", false, true},
		{"file12.txt", false, false},
		{"ax", false, true},
		{"cx", false, false},
		{"top/m/deep", false, true},
		{"top/m/n/deep", false, false},
		{"sub/top/m/deep", false, false},
		{"cache", true, true},
		{"cache/x/y", false, true},
	}
	for _, c := range cases {
		if got := r.Excluded(c.name, c.dir); got != c.excl {
			t.Errorf("Excluded(%q, dir=%v) = %v, want %v", c.name, c.dir, got, c.excl)
		}
	}
}

func TestClearAndErrors(t *testing.T) {
	r, err := Parse([]string{"- *", "!", "- b"}, 30)
	if err != nil {
		t.Fatal(err)
	}
	if r.Excluded("a", false) || !r.Excluded("b", false) {
		t.Error("! did not clear earlier rules")
	}
	if _, err := Parse([]string{". merge-file"}, 30); err == nil {
		t.Error("merge rule accepted")
	}
	if _, err := Parse([]string{"- "}, 30); err == nil {
		t.Error("empty pattern accepted")
	}
	var nilRules *Rules
	if nilRules.Excluded("x", false) {
		t.Error("nil rules exclude")
	}
}

// TestPlainPatterns checks that patterns without wildcards match by
// string comparison (Portage's excludes are such) exactly as their
// regular expressions do.
func TestPlainPatterns(t *testing.T) {
	rules := []string{"- /distfiles", "- /local", "- /.git", "- distfiles", "- a/b", "- /a/b/",
		"- metadata/md5-cache", "+ Manifest", "- /", "- x.y", "- é", "- a*b", "- \\*"}
	names := []string{"distfiles", "a/distfiles", "distfiles/x", "local", ".git", "a/b", "x/a/b",
		"xa/b", "a/b/c", "metadata/md5-cache", "gentoo/metadata/md5-cache", "Manifest",
		"dev-lang/go/Manifest", "", "x.y", "xxy", "é", "aXb", "*", "a"}
	plain := map[string]bool{"- /distfiles": true, "- a/b": true, "+ Manifest": true, "- é": false, "- a*b": false, "- \\*": false}
	for _, rule := range rules {
		r, err := Parse([]string{rule}, 31)
		if err != nil {
			t.Fatalf("%q: %v", rule, err)
		}
		ru := &r.list[0]
		if want, ok := plain[rule]; ok && ru.isLit != want {
			t.Errorf("%q: plain %v, want %v", rule, ru.isLit, want)
		}
		for _, name := range names {
			for _, subject := range []string{name, path.Base(name)} {
				if got, want := ru.matches(subject), ru.re.MatchString(subject); got != want {
					t.Errorf("rule %q on %q: matches %v, regexp %v", rule, subject, got, want)
				}
			}
		}
	}
	r, err := Parse([]string{"- /distfiles", "- /local", "- /packages", "- /.git"}, 31)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"distfiles": true, "local": true, "a/distfiles": false, "distfilesx": false, "dev-lang": false} {
		if got := r.Excluded(name, true); got != want {
			t.Errorf("Portage excludes on %q: %v, want %v", name, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"- /distfiles", "+ *.c", "- **/[a-z]?x/", "!", "/x", "H [!ab]", "- a/***"} {
		f.Add(s, "a/b/c.c")
	}
	f.Fuzz(func(t *testing.T, rule, name string) {
		r, err := Parse([]string{rule}, 31)
		if err != nil {
			return
		}
		_ = r.Excluded(name, false)
		_ = r.Excluded(name, true)
		// A plain pattern's string comparison must agree with its regexp.
		for i := range r.list {
			ru := &r.list[i]
			for _, subject := range []string{name, path.Base(name)} {
				if got, want := ru.matches(subject), ru.re.MatchString(subject); got != want {
					t.Fatalf("rule %q on %q: matches %v, regexp %v", rule, subject, got, want)
				}
			}
		}
	})
}
