package daemon

import (
	"bufio"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestParseGreeting(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    greeting
		wantErr string
	}{
		{"@RSYNCD: 32.0 sha512 sha256 sha1 md5 md4", greeting{32, 0, []string{"sha512", "sha256", "sha1", "md5", "md4"}}, ""},
		{"@RSYNCD: 31.0", greeting{31, 0, nil}, ""},
		{"@RSYNCD: 29", greeting{29, -1, nil}, ""},
		{"@RSYNCD: 30.1 md5", greeting{30, 1, []string{"md5"}}, ""},
		{"@RSYNCD: 30", greeting{}, "omitted the subprotocol"},
		{"@RSYNCD: 32.0", greeting{}, "omitted the digest name list"},
		{"@RSYNCD: x.0", greeting{}, "bad protocol version"},
		{"@RSYNCD: 31.x", greeting{}, "bad subprotocol"},
		{"@RSYNCD: 1234567.0", greeting{}, "bad protocol version"},
		{"@RSYNCD: -1.0", greeting{}, "bad protocol version"},
		{"HELO", greeting{}, "not an rsync greeting"},
		{"", greeting{}, "not an rsync greeting"},
	} {
		g, err := parseGreeting(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: err = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(g, tc.want) {
			t.Errorf("%q: got %+v, %v; want %+v", tc.in, g, err, tc.want)
		}
	}
}

func TestNegotiate(t *testing.T) {
	for _, tc := range []struct {
		proto, sub, want int
	}{
		{32, 0, 31}, {40, 3, 31}, {31, 0, 31}, {31, 2, 30}, {30, 0, 30}, {30, 1, 29},
		{29, -1, 29}, {27, -1, 27}, {26, -1, 26},
	} {
		if got := negotiate(greeting{Protocol: tc.proto, Sub: tc.sub}); got != tc.want {
			t.Errorf("negotiate(%d.%d) = %d, want %d", tc.proto, tc.sub, got, tc.want)
		}
	}
}

func TestReadArgs(t *testing.T) {
	r := bufio.NewReader(strings.NewReader("--server\x00--sender\x00-vlWtprze.iLsfxCIvu\x00.\x00gentoo-portage/\x00\x00rest"))
	args, err := readArgs(r, 31)
	if err != nil || strings.Join(args, "|") != "--server|--sender|-vlWtprze.iLsfxCIvu|.|gentoo-portage/" {
		t.Fatalf("got %q %v", args, err)
	}
	if rest, _ := io.ReadAll(r); string(rest) != "rest" {
		t.Fatalf("read past the end of the args: %q", rest)
	}
	r = bufio.NewReader(strings.NewReader("--server\n--sender\r\n-vlWtprz\n.\ngentoo-portage/\n\n"))
	args, err = readArgs(r, 27)
	if err != nil || strings.Join(args, "|") != "--server|--sender|-vlWtprz|.|gentoo-portage/" {
		t.Fatalf("protocol 27: got %q %v", args, err)
	}
	for name, in := range map[string]string{
		"eof":      "--server\x00--sender",
		"empty":    "\x00",
		"too long": strings.Repeat("a", maxArgLen+1) + "\x00\x00",
		"too many": strings.Repeat("a\x00", maxArgs+1) + "\x00",
		"total":    strings.Repeat(strings.Repeat("b", maxArgLen)+"\x00", maxArgsLen/maxArgLen+2) + "\x00",
	} {
		if _, err := readArgs(bufio.NewReader(strings.NewReader(in)), 30); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestReadLine(t *testing.T) {
	r := bufio.NewReaderSize(strings.NewReader("abc\r\n"+strings.Repeat("x", 100)+"\nlast"), 16)
	if l, err := readLine(r, '\n', 10); l != "abc" || err != nil {
		t.Fatalf("%q %v", l, err)
	}
	if _, err := readLine(r, '\n', 10); !errors.Is(err, errLineTooLong) {
		t.Fatalf("long line: %v", err)
	}
	r = bufio.NewReader(strings.NewReader("last"))
	if _, err := readLine(r, '\n', 10); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("unterminated: %v", err)
	}
	if _, err := readLine(r, '\n', 10); !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v", err)
	}
}

func FuzzParseGreeting(f *testing.F) {
	for _, s := range []string{"@RSYNCD: 32.0 sha512 sha256 sha1 md5 md4", "@RSYNCD: 29", "@RSYNCD: 30.1", "@RSYNCD: .", "@RSYNCD:  31.0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		g, err := parseGreeting(s)
		if err != nil {
			return
		}
		if g.Protocol < 0 || g.Protocol > 999999 || g.Sub < -1 {
			t.Fatalf("out of range: %+v", g)
		}
		p := negotiate(g)
		if p > ProtocolVersion || p > g.Protocol {
			t.Fatalf("negotiate(%+v) = %d", g, p)
		}
	})
}

func FuzzReadRequest(f *testing.F) {
	f.Add("gentoo-portage\n--server\x00--sender\x00-vlWtprze.iLsfxCIvu\x00.\x00gentoo-portage/\x00\x00", 31)
	f.Add("\n", 30)
	f.Add("#list\n", 29)
	f.Add("#early_input=3\nab\nm\n--server\x00\x00", 31)
	f.Add("m\n--server\n--sender\n-vlWtprz\n.\nm/\n\n", 27)
	f.Fuzz(func(t *testing.T, s string, proto int) {
		r := bufio.NewReaderSize(strings.NewReader(s), 16)
		name, err := readLine(r, '\n', maxLine)
		if err != nil {
			return
		}
		if rest, ok := strings.CutPrefix(name, earlyInputCmd); ok {
			if err := skipEarlyInput(r, rest); err != nil {
				return
			}
			if name, err = readLine(r, '\n', maxLine); err != nil {
				return
			}
		}
		if len(name) > maxLine || strings.Contains(name, "\n") {
			t.Fatalf("bad module line %q", name)
		}
		args, err := readArgs(r, proto)
		if err != nil {
			return
		}
		total := 0
		for _, a := range args {
			if a == "" || len(a) > maxArgLen {
				t.Fatalf("bad arg %q", a)
			}
			total += len(a)
		}
		if len(args) == 0 || len(args) > maxArgs || total > maxArgsLen {
			t.Fatalf("bounds: %d args, %d bytes", len(args), total)
		}
	})
}
