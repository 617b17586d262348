// Package filter parses the exclude/include rules an rsync client sends to
// the sender and decides which names are excluded from the file list.
package filter

import (
	"fmt"
	"regexp"
	"strings"
)

// MaxRules bounds the number of rules accepted from one client.
const MaxRules = 10000

// Rule is one parsed include or exclude rule.
type Rule struct {
	Pattern string // the pattern as given, without prefix
	Include bool   // + rule (otherwise exclude)
	DirOnly bool   // pattern ended in "/"
	re      *regexp.Regexp
	full    bool // matched against the whole path, not the last component
	// lit is the pattern when it has no wildcard or escape (the common
	// case, such as Portage's --exclude=/distfiles): it then matches by
	// comparing strings, as re would, without running re.
	lit    string
	isLit  bool
	anyDir bool // an unanchored pattern with a slash: it may match below any directory
}

// Rules is an ordered rule list; the first matching rule decides.
type Rules struct {
	list []Rule
}

// Parse parses rules as received from the client. Below protocol 29 a
// bare pattern is an exclude and "+ "/"- " prefixes are honoured; from 29
// every rule carries a prefix ("- ", "+ ", "H ", "S ", "P ", "R ", with
// optional modifiers) and "!" clears the list.
func Parse(rules []string, protocol int) (*Rules, error) {
	if len(rules) > MaxRules {
		return nil, fmt.Errorf("too many filter rules (%d, limit %d)", len(rules), MaxRules)
	}
	r := &Rules{}
	for _, s := range rules {
		if err := r.add(s, protocol); err != nil {
			return nil, fmt.Errorf("filter rule %q: %w", s, err)
		}
	}
	return r, nil
}

func (r *Rules) add(s string, protocol int) error {
	if s == "" {
		return nil
	}
	if s == "!" {
		r.list = r.list[:0]
		return nil
	}
	include := false
	pat := s
	switch {
	case strings.HasPrefix(s, "exclude "):
		pat = s[len("exclude "):]
	case strings.HasPrefix(s, "include "):
		include, pat = true, s[len("include "):]
	case len(s) >= 2 && strings.ContainsRune("-+HSPR", rune(s[0])) && (s[1] == ' ' || s[1] == '_' || strings.ContainsRune("/!Cenwsrpx", rune(s[1]))):
		sp := strings.IndexAny(s, " _")
		if sp < 0 {
			return fmt.Errorf("missing space after rule prefix")
		}
		mods := s[1:sp]
		pat = s[sp+1:]
		switch s[0] {
		case '+', 'S':
			include = true
		case 'P', 'R':
			return nil // receiver-side protect/risk: no effect on the sender
		}
		if strings.ContainsRune(mods, 'r') && !strings.ContainsRune(mods, 's') {
			return nil // receiver-only rule
		}
		if strings.ContainsRune(mods, '!') {
			return fmt.Errorf("negated rules are not supported")
		}
		if strings.ContainsRune(mods, '/') && !strings.HasPrefix(pat, "/") {
			pat = "/" + pat
		}
	case protocol >= 29 && (s[0] == ':' || s[0] == '.'):
		return fmt.Errorf("merge rules are not supported")
	}
	if pat == "" {
		return fmt.Errorf("empty pattern")
	}
	rule := Rule{Pattern: pat, Include: include}
	if len(pat) > 1 && strings.HasSuffix(pat, "/") {
		rule.DirOnly = true
		pat = strings.TrimSuffix(pat, "/")
	}
	anchored := strings.HasPrefix(pat, "/")
	if anchored {
		pat = strings.TrimPrefix(pat, "/")
	}
	rule.full = anchored || strings.Contains(pat, "/") || strings.Contains(pat, "**")
	rule.anyDir = rule.full && !anchored
	if isPlain(pat) {
		rule.lit, rule.isLit = pat, true
	}
	expr, err := globToRegexp(pat)
	if err != nil {
		return err
	}
	switch {
	case anchored || !rule.full:
		expr = "^" + expr + "$"
	default:
		expr = "(?:^|/)" + expr + "$"
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return fmt.Errorf("bad pattern: %w", err)
	}
	rule.re = re
	r.list = append(r.list, rule)
	return nil
}

// globToRegexp translates an rsync wildcard pattern: "*" matches within a
// path component, "**" across components, "?" one non-slash character,
// "[...]" a class, a trailing "/***" the directory and everything below.
func globToRegexp(p string) (string, error) {
	var b strings.Builder
	if strings.HasSuffix(p, "/***") {
		inner, err := globToRegexp(strings.TrimSuffix(p, "/***"))
		if err != nil {
			return "", err
		}
		return inner + "(?:/.*)?", nil
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch c {
		case '*':
			if i+1 < len(p) && p[i+1] == '*' {
				for i+1 < len(p) && p[i+1] == '*' {
					i++
				}
				b.WriteString(".*")
			} else {
				b.WriteString("[^/]*")
			}
		case '?':
			b.WriteString("[^/]")
		case '[':
			j := i + 1
			if j < len(p) && (p[j] == '!' || p[j] == '^') {
				j++
			}
			if j < len(p) && p[j] == ']' {
				j++
			}
			for j < len(p) && p[j] != ']' {
				j++
			}
			if j >= len(p) {
				b.WriteString(`\[`)
				continue
			}
			class := p[i+1 : j]
			neg := false
			if class != "" && (class[0] == '!' || class[0] == '^') {
				neg, class = true, class[1:]
			}
			b.WriteByte('[')
			if neg {
				b.WriteByte('^')
			}
			for k := 0; k < len(class); k++ {
				ch := class[k]
				if ch == '\\' || ch == '[' || ch == ']' || (ch == '^' && k == 0) {
					b.WriteByte('\\')
				}
				b.WriteByte(ch)
			}
			b.WriteByte(']')
			i = j
		case '\\':
			if i+1 < len(p) {
				i++
				b.WriteString(regexp.QuoteMeta(p[i : i+1]))
			} else {
				b.WriteString(`\\`)
			}
		default:
			b.WriteString(regexp.QuoteMeta(p[i : i+1]))
		}
	}
	return b.String(), nil
}

// Excluded reports whether name ("/"-separated, relative to the transfer
// root) is excluded. A nil *Rules excludes nothing.
func (r *Rules) Excluded(name string, isDir bool) bool {
	if r == nil {
		return false
	}
	name = strings.TrimPrefix(name, "/")
	base := name
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		base = name[i+1:]
	}
	for i := range r.list {
		ru := &r.list[i]
		if ru.DirOnly && !isDir {
			continue
		}
		subject := base
		if ru.full {
			subject = name
		}
		if ru.matches(subject) {
			return !ru.Include
		}
	}
	return false
}

// isPlain tells whether pattern p matches only itself: ASCII without
// wildcards or escapes (non-ASCII is left to the regexp, which reads
// names as UTF-8).
func isPlain(p string) bool {
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c >= 0x80, c == '*', c == '?', c == '[', c == '\\':
			return false
		}
	}
	return true
}

// matches tells whether the rule's pattern matches subject (the whole
// path or the last component, as the rule wants).
func (ru *Rule) matches(subject string) bool {
	if !ru.isLit {
		return ru.re.MatchString(subject)
	}
	if subject == ru.lit {
		return true
	}
	// "(?:^|/)" in the expression of such a pattern.
	return ru.anyDir && strings.HasSuffix(subject, ru.lit) &&
		len(subject) > len(ru.lit) && subject[len(subject)-len(ru.lit)-1] == '/'
}

// Len returns the number of active rules.
func (r *Rules) Len() int {
	if r == nil {
		return 0
	}
	return len(r.list)
}
