package config

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/lanmirror/lanmirror/internal/acl"
)

// Bounds on an rsyncd.conf, so that a wrong file (a binary, /dev/zero)
// gives a clear error instead of exhausting memory.
const (
	maxRsyncdLine    = 64 << 10 // one logical line, continuations included
	maxRsyncdSize    = 16 << 20 // the whole file
	maxRsyncdModules = 10000
)

// LoadRsyncd reads and parses the rsyncd.conf at path.
func LoadRsyncd(path string) (*Rsyncd, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("rsyncd.conf: %w", err)
	}
	defer f.Close()
	return ParseRsyncd(f, path)
}

// ParseRsyncd parses the classic rsyncd.conf syntax read from r; name is
// used in messages (file:line). The global section gives defaults to the
// modules that follow it; "[global]" returns to it. Parameter names are
// case-insensitive, and spaces and underscores in them do not matter.
// Unknown or unsupported parameters are collected in Warnings; values that
// lanmirror cannot honour safely ("read only = no", a malformed host rule or
// number) are errors.
func ParseRsyncd(r io.Reader, name string) (*Rsyncd, error) {
	if name == "" {
		name = "rsyncd.conf"
	}
	p := &rsyncdParser{
		conf: &Rsyncd{File: name},
		defaults: Module{
			ReadOnly: true, UseChroot: true, List: true,
		},
		index: map[string]int{},
	}
	lr := &lineReader{r: bufio.NewReader(io.LimitReader(r, maxRsyncdSize+1)), name: name}
	for {
		line, no, err := lr.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, err
		}
		if lr.total > maxRsyncdSize {
			return nil, fmt.Errorf("%s: file larger than %d bytes", name, maxRsyncdSize)
		}
		if err := p.line(line, fmt.Sprintf("%s:%d", name, no)); err != nil {
			return nil, err
		}
	}
	for i := range p.conf.Modules {
		m := &p.conf.Modules[i]
		if m.Path == "" {
			return nil, fmt.Errorf("%s: module [%s] has no path", name, m.Name)
		}
	}
	return p.conf, nil
}

// lineReader yields logical lines: physical lines joined where one ends
// with a backslash (trailing whitespace after it allowed).
type lineReader struct {
	r     *bufio.Reader
	name  string
	no    int
	total int
}

// next returns the next logical line and the number of its first line.
func (l *lineReader) next() (string, int, error) {
	var b strings.Builder
	start := 0
	for {
		raw, err := l.r.ReadString('\n')
		if raw == "" && err != nil {
			if b.Len() > 0 {
				return b.String(), start, nil
			}
			if errors.Is(err, io.EOF) {
				return "", 0, io.EOF
			}
			return "", 0, fmt.Errorf("%s: %w", l.name, err)
		}
		l.no++
		l.total += len(raw)
		if start == 0 {
			start = l.no
		}
		if b.Len()+len(raw) > maxRsyncdLine || l.total > maxRsyncdSize {
			return "", 0, fmt.Errorf("%s:%d: line longer than %d bytes", l.name, start, maxRsyncdLine)
		}
		line := strings.TrimRight(raw, " \t\r\n\f\v")
		if strings.HasSuffix(line, "\\") {
			b.WriteString(line[:len(line)-1])
			if err != nil {
				return b.String(), start, nil
			}
			continue
		}
		b.WriteString(line)
		return b.String(), start, nil
	}
}

type rsyncdParser struct {
	conf     *Rsyncd
	defaults Module // global module parameters so far
	cur      int    // index of the current module when inModule
	inModule bool
	index    map[string]int
}

func (p *rsyncdParser) warn(at, format string, args ...any) {
	p.conf.Warnings = append(p.conf.Warnings, at+": "+fmt.Sprintf(format, args...))
}

func (p *rsyncdParser) line(line, at string) error {
	t := strings.TrimSpace(line)
	if t == "" || t[0] == '#' || t[0] == ';' {
		return nil
	}
	if t[0] == '[' {
		return p.section(t, at)
	}
	if t[0] == '&' {
		p.warn(at, "directive %q is not supported, ignored", strings.Fields(t)[0])
		return nil
	}
	key, val, ok := strings.Cut(t, "=")
	if !ok {
		p.warn(at, "ignoring badly formed line %q (want name = value)", t)
		return nil
	}
	key = strings.TrimSpace(key)
	if key == "" {
		return fmt.Errorf("%s: parameter without a name", at)
	}
	return p.param(key, normKey(key), strings.TrimSpace(val), at)
}

func (p *rsyncdParser) section(t, at string) error {
	end := strings.IndexByte(t, ']')
	if end < 0 {
		return fmt.Errorf("%s: badly formed section header %q", at, t)
	}
	name := strings.Join(strings.Fields(t[1:end]), " ")
	switch {
	case name == "":
		return fmt.Errorf("%s: empty module name", at)
	case strings.ContainsRune(name, '/'):
		return fmt.Errorf("%s: module name %q contains a slash", at, name)
	case strings.ContainsAny(name, "\x00\n"):
		return fmt.Errorf("%s: module name %q contains a control character", at, name)
	}
	if strings.EqualFold(name, "global") {
		p.inModule = false
		return nil
	}
	if i, ok := p.index[name]; ok {
		// As rsyncd does, a repeated section continues the module.
		p.cur, p.inModule = i, true
		return nil
	}
	if len(p.conf.Modules) >= maxRsyncdModules {
		return fmt.Errorf("%s: more than %d modules", at, maxRsyncdModules)
	}
	m := p.defaults
	m.Name = name
	m.Exclude = append([]string(nil), p.defaults.Exclude...)
	m.HostsAllow = append([]string(nil), p.defaults.HostsAllow...)
	m.HostsDeny = append([]string(nil), p.defaults.HostsDeny...)
	p.conf.Modules = append(p.conf.Modules, m)
	p.cur, p.inModule = len(p.conf.Modules)-1, true
	p.index[name] = p.cur
	return nil
}

// normKey folds a parameter name: case, spaces and underscores do not
// matter ("Max_Connections" is "max connections").
func normKey(k string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(k) {
		if c == ' ' || c == '\t' || c == '_' {
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// unsupportedParams are rsyncd.conf parameters lanmirror knows but does not
// implement; they are reported with a specific warning.
var unsupportedParams = map[string]bool{
	"logfile": true, "syslogfacility": true, "syslogtag": true, "transferlogging": true,
	"logformat": true, "lockfile": true, "refuseoptions": true, "dontcompress": true,
	"reverselookup": true, "forwardlookup": true, "authusers": true, "secretsfile": true,
	"strictmodes": true, "authdigest": true, "include": true, "includefrom": true,
	"excludefrom": true, "filter": true, "incomingchmod": true, "outgoingchmod": true,
	"fakesuper": true, "numericids": true, "mungesymlinks": true, "charset": true,
	"maxverbosity": true, "ignoreerrors": true, "ignorenonreadable": true, "writeonly": true,
	"tempdir": true, "earlyexec": true, "prexferexec": true, "postxferexec": true,
	"daemonchroot": true, "daemonuid": true, "daemongid": true, "socketoptions": true,
	"listenbacklog": true, "proxyprotocol": true, "proxyprotocolhosts": true,
	"nameconverter": true, "opennoatime": true, "insecurelinks": true,
}

// globalOnly are parameters that only make sense in the global section.
var globalOnly = map[string]bool{"port": true, "address": true, "pidfile": true, "motdfile": true, "maxconnectionsperclient": true}

func (p *rsyncdParser) param(key, k, val, at string) error {
	if globalOnly[k] {
		if p.inModule {
			p.warn(at, "global parameter %q in module [%s] ignored", key, p.conf.Modules[p.cur].Name)
			return nil
		}
		switch k {
		case "port":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > 65535 {
				return fmt.Errorf("%s: port: %q is not a port number", at, val)
			}
			p.conf.Port = n
		case "address":
			p.conf.Address = val
		case "pidfile":
			p.conf.PIDFile = val
		case "motdfile":
			p.conf.MOTDFile = val
		case "maxconnectionsperclient":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 {
				return fmt.Errorf("%s: max connections per client: %q is not a number >= 0", at, val)
			}
			p.conf.MaxConnsPerClient = n
		}
		return nil
	}
	m := &p.defaults
	if p.inModule {
		m = &p.conf.Modules[p.cur]
	}
	switch k {
	case "path":
		m.Path = val
	case "comment":
		m.Comment = val
	case "exclude":
		ex, err := parseExcludes(val)
		if err != nil {
			return fmt.Errorf("%s: exclude: %w", at, err)
		}
		m.Exclude = ex
	case "hostsallow", "hostsdeny":
		rules := splitHosts(val)
		if _, err := acl.Parse(rules...); err != nil {
			return fmt.Errorf("%s: %s: %w (host names are not supported)", at, key, err)
		}
		if k == "hostsallow" {
			m.HostsAllow = rules
		} else {
			m.HostsDeny = rules
		}
	case "maxconnections":
		n, err := strconv.Atoi(val)
		if err != nil {
			return fmt.Errorf("%s: max connections: %q is not a number", at, val)
		}
		m.MaxConnections = n
	case "timeout":
		n, err := strconv.Atoi(val)
		if err != nil || n < 0 {
			return fmt.Errorf("%s: timeout: %q is not a number of seconds", at, val)
		}
		m.Timeout = time.Duration(n) * time.Second
	case "readonly":
		b, err := parseBool(val)
		if err != nil {
			return fmt.Errorf("%s: read only: %w", at, err)
		}
		if !b {
			return fmt.Errorf("%s: read only = %s is not supported: lanmirror serves rsync modules read only", at, val)
		}
		m.ReadOnly = true
	case "usechroot":
		b, err := parseBool(val)
		if err != nil {
			return fmt.Errorf("%s: use chroot: %w", at, err)
		}
		m.UseChroot = b
	case "list":
		b, err := parseBool(val)
		if err != nil {
			return fmt.Errorf("%s: list: %w", at, err)
		}
		m.List = b
	case "uid":
		m.UID = val
	case "gid":
		m.GID = val
	default:
		if unsupportedParams[k] {
			p.warn(at, "parameter %q is not supported by lanmirror, ignored", key)
		} else {
			p.warn(at, "unknown parameter %q ignored", key)
		}
	}
	return nil
}

// parseBool accepts rsyncd.conf's boolean spellings, in any case.
func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "yes", "true", "1", "on":
		return true, nil
	case "no", "false", "0", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (yes/no, true/false, 1/0)", v)
}

// splitHosts splits a hosts allow/deny value at commas and whitespace.
func splitHosts(v string) []string {
	return strings.FieldsFunc(v, func(c rune) bool {
		return c == ',' || c == ' ' || c == '\t'
	})
}

// parseExcludes splits a space-separated exclude list. A "- " qualifier is
// accepted (it is the default); "+ " (include) is not supported.
func parseExcludes(v string) ([]string, error) {
	f := strings.Fields(v)
	out := make([]string, 0, len(f))
	for i := 0; i < len(f); i++ {
		pat := f[i]
		switch {
		case pat == "-" || pat == "+":
			if i+1 >= len(f) {
				return nil, fmt.Errorf("qualifier %q without a pattern", pat)
			}
			if pat == "+" {
				return nil, fmt.Errorf("include rule \"+ %s\" is not supported", f[i+1])
			}
			i++
			pat = f[i]
		case strings.HasPrefix(pat, "+,") || strings.HasPrefix(pat, "-,"):
			return nil, fmt.Errorf("rule modifiers in %q are not supported", pat)
		}
		out = append(out, pat)
	}
	return out, nil
}
