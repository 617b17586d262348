package httpd

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"testing"
)

func TestPublic(t *testing.T) {
	for addr, want := range map[string]bool{
		"8.8.8.8": true, "2a00:1450::1": true, "151.101.1.1": true,
		"127.0.0.1": false, "127.9.9.9": false, "::1": false, "10.1.2.3": false, "172.16.0.1": false,
		"192.168.0.1": false, "169.254.169.254": false, "0.0.0.0": false, "::": false, "224.0.0.1": false,
		"fe80::1": false, "fc00::1": false, "100.64.0.1": false, "255.255.255.255": false, "::ffff:127.0.0.1": false,
		"::ffff:10.0.0.1": false, "ff02::1": false,
	} {
		if got := Public(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Public(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestPolicyListedAndCheck(t *testing.T) {
	p, err := NewPolicy([]string{"https://distfiles.gentoo.org", "http://127.0.0.1:8081/gentoo"}, []string{"lan-mirror", "10.0.0.5:3128", "http://[fd00::1]:81/"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		host, port string
		want       bool
	}{
		{"distfiles.gentoo.org", "443", true}, {"DISTFILES.gentoo.org", "443", true}, {"distfiles.gentoo.org", "80", false},
		{"127.0.0.1", "8081", true}, {"127.0.0.1", "8082", false}, {"lan-mirror", "1234", true},
		{"10.0.0.5", "3128", true}, {"10.0.0.5", "80", false}, {"fd00::1", "81", true},
	} {
		if got := p.Listed(tc.host, tc.port); got != tc.want {
			t.Errorf("Listed(%s, %s) = %v", tc.host, tc.port, got)
		}
	}
	ctx := context.Background()
	for raw, ok := range map[string]bool{
		"http://127.0.0.1:8081/x": true, "http://127.0.0.1:8082/x": false, "http://10.0.0.5:3128/": true,
		"http://10.0.0.5/": false, "http://8.8.8.8/": true, "http://[::1]:8081/": false, "http://169.254.169.254/": false,
	} {
		u, _ := url.Parse(raw)
		err := p.Check(ctx, u)
		if (err == nil) != ok {
			t.Errorf("Check(%s) = %v", raw, err)
		}
		if err != nil && !errors.Is(err, errRefused) {
			t.Errorf("Check(%s): %v is not errRefused", raw, err)
		}
	}
}

// The dial hook checks the address actually dialed: an unlisted name that
// resolves to loopback is refused at connect time, whatever Check said
// before (DNS rebinding).
func TestPolicyDialerRefusesUnlistedPrivate(t *testing.T) {
	var hits int
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		io.WriteString(w, "ok")
	}))
	defer ts.Close()
	p, err := NewPolicy([]string{ts.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := p.Client()
	resp, err := c.Get(ts.URL + "/a")
	if err != nil {
		t.Fatalf("listed upstream: %v", err)
	}
	resp.Body.Close()
	_, port, _ := net.SplitHostPort(ts.Listener.Addr().String())
	for _, u := range []string{"http://localhost:" + port + "/b", "http://[::ffff:127.0.0.1]:" + port + "/c"} {
		resp, err = c.Get(u)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("%s: unlisted loopback dialed", u)
		}
		if !errors.Is(err, errRefused) {
			t.Fatalf("%s: %v is not errRefused", u, err)
		}
	}
	// A redirect from a listed host to an unlisted private one is refused too.
	red := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://localhost:"+port+"/d", http.StatusFound)
	}))
	defer red.Close()
	p2, _ := NewPolicy([]string{red.URL}, nil)
	if resp, err := p2.Client().Get(red.URL); err == nil {
		resp.Body.Close()
		t.Fatal("redirect to unlisted loopback followed")
	}
	if hits != 1 {
		t.Fatalf("upstream hits = %d, want 1", hits)
	}
}
