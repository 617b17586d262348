package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/lanmirror/lanmirror/internal/acl"
)

// The config file (TOML) carries every setting of Serve under its flag's
// name (the toml tags of Serve), the sizes as strings ("200G"), and
// the rsync modules as [[module]] tables with the rsyncd.conf settings
// (moduleTable). Unknown keys are errors.

// fileSettings is the file's layout: Serve's keys at the top level, plus
// the keys that have their own form in the file.
type fileSettings struct {
	Serve
	MaxCache   string        `toml:"max-cache"`
	LocalCache string        `toml:"s3-local-cache"`
	Modules    []moduleTable `toml:"module"`
}

// sizeKey is a byte count of Serve written as a size with a unit.
type sizeKey struct {
	key  string
	n    *int64
	text *string
}

func (f *fileSettings) sizes() []sizeKey {
	return []sizeKey{
		{"max-cache", &f.Serve.MaxCache, &f.MaxCache},
		{"s3-local-cache", &f.Serve.LocalCache, &f.LocalCache},
	}
}

// moduleTable is one [[module]] table: the settings of an rsyncd.conf
// module section, with "-" for the spaces of their names.
type moduleTable struct {
	Name           string   `toml:"name"`
	Path           string   `toml:"path"`
	Comment        string   `toml:"comment,omitempty"`
	Exclude        []string `toml:"exclude,omitempty"`
	HostsAllow     []string `toml:"hosts-allow,omitempty"`
	HostsDeny      []string `toml:"hosts-deny,omitempty"`
	MaxConnections int      `toml:"max-connections,omitempty"`
	ReadOnly       *bool    `toml:"read-only"`
	UseChroot      *bool    `toml:"use-chroot"`
	List           *bool    `toml:"list"`
	UID            string   `toml:"uid,omitempty"`
	GID            string   `toml:"gid,omitempty"`
	Timeout        duration `toml:"timeout,omitempty"`
}

// duration is a time.Duration written as "10m" in the file.
type duration time.Duration

func (d *duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("bad duration %q (want e.g. 90s, 10m)", b)
	}
	*d = duration(v)
	return nil
}

func (d duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText parses the "DIR:NAME" form (alias = ["DIR:NAME"]).
func (a *Alias) UnmarshalText(b []byte) error {
	v, err := ParseAlias(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// MarshalText writes the "DIR:NAME" form.
func (a Alias) MarshalText() ([]byte, error) { return []byte(a.Dir + ":" + a.Name), nil }

// FileError is a problem in the config file, with its place.
type FileError struct {
	File string
	Line int    // 0 when unknown
	Key  string // dotted key; "" when none
	Msg  string
}

func (e *FileError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, ": %s", e.Key)
	}
	fmt.Fprintf(&b, ": %s", e.Msg)
	return b.String()
}

// LoadFile reads the config file at path over s: the keys it sets replace
// s's values, the others are kept. Its [[module]] tables replace
// s.RsyncModules when there are any.
func LoadFile(path string, s *Serve) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	return decodeFile(path, data, s)
}

func decodeFile(path string, data []byte, s *Serve) error {
	f := fileSettings{Serve: *s}
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&f)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return &FileError{File: path, Line: pe.Position.Line, Key: pe.LastKey, Msg: pe.Message}
		}
		// Type mismatches: "toml: line N (last key "K"): message".
		if m := decodeErrRe.FindStringSubmatch(err.Error()); m != nil {
			line, _ := strconv.Atoi(m[1])
			return &FileError{File: path, Line: line, Key: m[2], Msg: m[3]}
		}
		return &FileError{File: path, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
	}
	lines := keyLines(data)
	if und := md.Undecoded(); len(und) > 0 {
		var errs []error
		for _, k := range und {
			errs = append(errs, &FileError{File: path, Line: lines.take(k), Key: k.String(), Msg: "unknown key"})
		}
		return errors.Join(errs...)
	}
	for _, sz := range f.sizes() {
		if md.IsDefined(sz.key) {
			if strings.TrimSpace(*sz.text) == "" {
				*sz.n = 0 // "": none, as for the flag
				continue
			}
			if *sz.n, err = ParseSize(*sz.text); err != nil {
				return &FileError{File: path, Line: lines.take(toml.Key{sz.key}), Key: sz.key, Msg: err.Error()}
			}
		}
	}
	if md.IsDefined("allow") {
		if _, err := acl.Parse(f.Allow...); err != nil {
			return &FileError{File: path, Line: lines.take(toml.Key{"allow"}), Key: "allow", Msg: err.Error()}
		}
	}
	if len(f.Modules) > 0 {
		f.Serve.RsyncModules = nil
		seen := map[string]bool{}
		for i, t := range f.Modules {
			line := lines.nth("module", i)
			if t.Name == "" || t.Path == "" {
				return &FileError{File: path, Line: line, Key: "module", Msg: "a [[module]] needs name and path"}
			}
			if seen[t.Name] {
				return &FileError{File: path, Line: line, Key: "module.name", Msg: fmt.Sprintf("module %s defined twice", t.Name)}
			}
			seen[t.Name] = true
			for key, rules := range map[string][]string{"hosts-allow": t.HostsAllow, "hosts-deny": t.HostsDeny} {
				if _, err := acl.Parse(rules...); err != nil {
					return &FileError{File: path, Line: line, Key: "module." + key, Msg: fmt.Sprintf("module %s: %v", t.Name, err)}
				}
			}
			f.Serve.RsyncModules = append(f.Serve.RsyncModules, t.module())
		}
	}
	*s = f.Serve
	return nil
}

// module turns the table into a Module with rsyncd.conf's defaults (read
// only, chrooted, listed).
func (t moduleTable) module() Module {
	m := Module{
		Name: t.Name, Path: t.Path, Comment: t.Comment, Exclude: t.Exclude,
		HostsAllow: t.HostsAllow, HostsDeny: t.HostsDeny, MaxConnections: t.MaxConnections,
		ReadOnly: true, UseChroot: true, List: true,
		UID: t.UID, GID: t.GID, Timeout: time.Duration(t.Timeout),
	}
	if t.ReadOnly != nil {
		m.ReadOnly = *t.ReadOnly
	}
	if t.UseChroot != nil {
		m.UseChroot = *t.UseChroot
	}
	if t.List != nil {
		m.List = *t.List
	}
	return m
}

func tableOf(m Module) moduleTable {
	return moduleTable{
		Name: m.Name, Path: m.Path, Comment: m.Comment, Exclude: m.Exclude,
		HostsAllow: m.HostsAllow, HostsDeny: m.HostsDeny, MaxConnections: m.MaxConnections,
		ReadOnly: &m.ReadOnly, UseChroot: &m.UseChroot, List: &m.List,
		UID: m.UID, GID: m.GID, Timeout: duration(m.Timeout),
	}
}

// WriteTOML writes s in the config file's format (check-config prints the
// effective settings so).
func (s *Serve) WriteTOML(w io.Writer) error {
	f := fileSettings{Serve: *s}
	for _, sz := range f.sizes() {
		if *sz.n > 0 {
			*sz.text = formatSize(*sz.n)
		}
	}
	for _, m := range s.RsyncModules {
		f.Modules = append(f.Modules, tableOf(m))
	}
	return toml.NewEncoder(w).Encode(f)
}

// formatSize writes n with the largest binary suffix dividing it.
func formatSize(n int64) string {
	for _, u := range []struct {
		s string
		m int64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n >= u.m && n%u.m == 0 {
			return fmt.Sprintf("%d%s", n/u.m, u.s)
		}
	}
	return fmt.Sprint(n)
}

// keyPlaces maps the keys of a TOML document to the lines they are set on,
// in document order (the decoder does not expose them): enough to name the
// line of an unknown key. Dotted and inline-table keys are found by their
// table only.
type keyPlaces struct {
	lines map[string][]int // full key -> lines, in order
	used  map[string]int
}

var (
	decodeErrRe = regexp.MustCompile(`^toml: (?:line (\d+) )?\(last key "([^"]*)"\): (.*)$`)
	tableRe     = regexp.MustCompile(`^\s*\[\[?\s*([^\[\]]+?)\s*\]\]?`)
	keyRe       = regexp.MustCompile(`^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_.-]+)\s*=`)
)

func keyLines(data []byte) *keyPlaces {
	p := &keyPlaces{lines: map[string][]int{}, used: map[string]int{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	table := ""
	inMultiline := false
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if inMultiline {
			if strings.Count(line, `"""`)%2 == 1 || strings.Count(line, `'''`)%2 == 1 {
				inMultiline = false
			}
			continue
		}
		if m := tableRe.FindStringSubmatch(line); m != nil && !strings.Contains(line[:strings.Index(line, "[")], "=") {
			table = unquoteKey(m[1])
			p.lines[table] = append(p.lines[table], n)
			continue
		}
		if m := keyRe.FindStringSubmatch(line); m != nil {
			k := unquoteKey(m[1])
			if table != "" {
				k = table + "." + k
			}
			p.lines[k] = append(p.lines[k], n)
			if strings.Count(line, `"""`) == 1 || strings.Count(line, `'''`) == 1 {
				inMultiline = true
			}
		}
	}
	return p
}

func unquoteKey(k string) string {
	var parts []string
	for _, s := range strings.Split(k, ".") {
		parts = append(parts, strings.Trim(strings.TrimSpace(s), `"'`))
	}
	return strings.Join(parts, ".")
}

// take returns the line of the next unreported occurrence of k (0 when
// not found).
func (p *keyPlaces) take(k toml.Key) int {
	name := k.String()
	ls := p.lines[name]
	for len(ls) == 0 && strings.Contains(name, ".") {
		name = name[:strings.LastIndex(name, ".")]
		ls = p.lines[name]
	}
	if len(ls) == 0 {
		return 0
	}
	i := p.used[name]
	if i >= len(ls) {
		i = len(ls) - 1
	}
	p.used[name]++
	return ls[i]
}

// nth returns the line of the i-th occurrence of the table header name.
func (p *keyPlaces) nth(name string, i int) int {
	if ls := p.lines[name]; i < len(ls) {
		return ls[i]
	}
	return 0
}
