package connlimit

import (
	"net"
	"testing"
)

func tcp(s string) net.Addr {
	a, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		panic(err)
	}
	return a
}

func TestPerClient(t *testing.T) {
	p := New(2)
	a1, a2 := tcp("10.0.0.1:1000"), tcp("10.0.0.1:1001")
	mapped := tcp("[::ffff:10.0.0.1]:1002")
	other := tcp("10.0.0.2:1000")
	r1, ok1 := p.Acquire(a1)
	r2, ok2 := p.Acquire(a2)
	if !ok1 || !ok2 {
		t.Fatal("first two connections refused")
	}
	if _, ok := p.Acquire(mapped); ok {
		t.Fatal("third connection (IPv4-mapped spelling) accepted")
	}
	if _, ok := p.Acquire(other); !ok {
		t.Fatal("another client refused")
	}
	r1()
	r1() // a second release does nothing
	if got := p.Count(a1); got != 1 {
		t.Fatalf("count after one release = %d, want 1", got)
	}
	r3, ok := p.Acquire(mapped)
	if !ok {
		t.Fatal("connection refused after a release")
	}
	if _, ok := p.Acquire(a1); ok {
		t.Fatal("limit not enforced after a release")
	}
	r2()
	r3()
	if got := p.Count(a1); got != 0 {
		t.Fatalf("count after all releases = %d", got)
	}
	if len(p.n) != 1 { // only "other" remains
		t.Fatalf("map keeps %d addresses, want 1", len(p.n))
	}
}

func TestNoLimit(t *testing.T) {
	for _, p := range []*PerClient{nil, New(0), New(-1)} {
		for range 100 {
			if _, ok := p.Acquire(tcp("10.0.0.1:1")); !ok {
				t.Fatal("refused without a limit")
			}
		}
	}
	p := New(1)
	if _, ok := p.Acquire(&net.UnixAddr{Name: "/x", Net: "unix"}); !ok {
		t.Fatal("unix socket refused")
	}
	if _, ok := p.Acquire(&net.UnixAddr{Name: "/x", Net: "unix"}); !ok {
		t.Fatal("unix socket limited")
	}
}
