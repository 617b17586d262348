package daemon

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Protocol versions this daemon speaks.
const (
	// ProtocolVersion is the highest protocol offered in the greeting.
	ProtocolVersion = 31
	// MinProtocol is the oldest protocol a client may negotiate.
	MinProtocol = 27
	// subprotocol is our subprotocol number (a release, not a pre-release).
	subprotocol = 0
)

// Bounds on what a client may send before its session starts.
const (
	maxLine    = 1024     // a greeting or module line (rsyncd: line[1024])
	maxArgLen  = 5 * 1024 // one argument (rsyncd: BIGPATHBUFLEN)
	maxArgs    = 1024     // arguments in one request
	maxArgsLen = 256 << 10
)

// errLineTooLong is returned when a line exceeds its bound.
var errLineTooLong = errors.New("line too long")

// readLine reads one line ended by delim, without the delimiter (and a
// trailing CR for newline-terminated lines). It reads at most max bytes of
// content; longer lines give errLineTooLong. A stream that ends before the
// delimiter gives io.ErrUnexpectedEOF (or io.EOF when nothing was read).
func readLine(r *bufio.Reader, delim byte, max int) (string, error) {
	var buf []byte
	for {
		chunk, err := r.ReadSlice(delim)
		if len(buf)+len(chunk) > max+1 {
			return "", errLineTooLong
		}
		buf = append(buf, chunk...)
		switch {
		case err == nil:
			buf = buf[:len(buf)-1]
			if delim == '\n' {
				buf = bytes.TrimSuffix(buf, []byte{'\r'})
			}
			return string(buf), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(buf) == 0 {
				return "", io.EOF
			}
			return "", io.ErrUnexpectedEOF
		default:
			return "", err
		}
	}
}

// greeting is a parsed "@RSYNCD: 32.0 sha512 sha256 sha1 md5 md4" line.
type greeting struct {
	Protocol int
	Sub      int // -1 when absent
	Digests  []string
}

// greetingPrefix starts every daemon greeting.
const greetingPrefix = "@RSYNCD: "

// parseGreeting parses a client greeting. The version is "N" or "N.S";
// the digest list is optional below protocol 32 (as in clientserver.c).
func parseGreeting(line string) (greeting, error) {
	g := greeting{Sub: -1}
	rest, ok := strings.CutPrefix(line, greetingPrefix)
	if !ok {
		return g, fmt.Errorf("not an rsync greeting: %q", clip(line))
	}
	ver, digests, _ := strings.Cut(rest, " ")
	major, minor, hasMinor := strings.Cut(ver, ".")
	p, err := smallUint(major)
	if err != nil {
		return g, fmt.Errorf("bad protocol version in greeting %q", clip(line))
	}
	g.Protocol = p
	if hasMinor {
		if g.Sub, err = smallUint(minor); err != nil {
			return g, fmt.Errorf("bad subprotocol in greeting %q", clip(line))
		}
	}
	if d := strings.Fields(digests); len(d) > 0 {
		g.Digests = d
	}
	if g.Sub < 0 && g.Protocol >= 30 {
		return g, fmt.Errorf("your client omitted the subprotocol value: %s", clip(line))
	}
	if len(g.Digests) == 0 && g.Protocol > 31 {
		return g, fmt.Errorf("your client omitted the digest name list: %s", clip(line))
	}
	return g, nil
}

// smallUint parses a decimal number of at most 6 digits.
func smallUint(s string) (int, error) {
	if s == "" || len(s) > 6 {
		return 0, errors.New("bad number")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, errors.New("bad number")
		}
	}
	return strconv.Atoi(s)
}

// negotiate returns the protocol both sides speak, following
// exchange_protocols in clientserver.c: the lower version wins, and a
// pre-release (non-zero subprotocol) of that version counts as the one
// before it.
func negotiate(g greeting) int {
	proto := ProtocolVersion
	remoteSub := max(g.Sub, 0)
	switch {
	case proto > g.Protocol:
		proto = g.Protocol
		if remoteSub != 0 {
			proto--
		}
	case proto == g.Protocol:
		if remoteSub != subprotocol {
			proto--
		}
	}
	return proto
}

// readArgs reads the client's argument list: NUL-terminated arguments
// ended by an empty one from protocol 30, newline-terminated ones ended by
// an empty line below. Counts and lengths are bounded.
func readArgs(r *bufio.Reader, protocol int) ([]string, error) {
	delim := byte('\n')
	if protocol >= 30 {
		delim = 0
	}
	var args []string
	total := 0
	for {
		a, err := readLine(r, delim, maxArgLen)
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				return nil, fmt.Errorf("argument %d longer than %d bytes", len(args)+1, maxArgLen)
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("read arguments: %w", err)
		}
		if a == "" {
			if len(args) == 0 {
				return nil, errors.New("empty argument list")
			}
			return args, nil
		}
		total += len(a)
		if len(args) >= maxArgs || total > maxArgsLen {
			return nil, errors.New("too many daemon arguments")
		}
		args = append(args, a)
	}
}

// clip shortens client-supplied text for messages and logs.
func clip(s string) string {
	const n = 80
	if len(s) > n {
		s = s[:n] + "..."
	}
	q := strconv.QuoteToGraphic(s)
	return q[1 : len(q)-1]
}

// earlyInputCmd announces --early-input data before the module line.
const earlyInputCmd = "#early_input="

// skipEarlyInput reads and discards the early input whose length follows
// earlyInputCmd (1 to maxArgLen bytes, as rsyncd allows).
func skipEarlyInput(r *bufio.Reader, length string) error {
	n, err := smallUint(length)
	if err != nil || n < 1 || n > maxArgLen {
		return fmt.Errorf("bad early input length %q", clip(length))
	}
	if _, err := r.Discard(n); err != nil {
		return fmt.Errorf("read early input: %w", err)
	}
	return nil
}
