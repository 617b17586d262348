package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"syscall"
	"testing"
	"time"
)

// heldUpstream serves one file: half of it at once, the rest when release
// is closed (or the test ends).
type heldUpstream struct {
	ts      *httptest.Server
	body    []byte
	release chan struct{}
	once    sync.Once
}

func newHeldUpstream(t *testing.T, body []byte) *heldUpstream {
	u := &heldUpstream{body: body, release: make(chan struct{})}
	u.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(u.body)))
		w.WriteHeader(http.StatusOK)
		w.Write(u.body[:len(u.body)/2])
		w.(http.Flusher).Flush()
		select {
		case <-u.release:
		case <-r.Context().Done():
			return
		}
		w.Write(u.body[len(u.body)/2:])
	}))
	t.Cleanup(func() { u.let(); u.ts.Close() })
	return u
}

func (u *heldUpstream) let() { u.once.Do(func() { close(u.release) }) }

// startHeldGet starts a GET through lanmirror and returns once the first
// bytes arrived (the download is in flight); the result comes on the
// channel.
func startHeldGet(t *testing.T, url string) <-chan []byte {
	t.Helper()
	first := make(chan error, 1)
	done := make(chan []byte, 1)
	go func() {
		resp, err := http.Get(url)
		if err != nil {
			first <- err
			return
		}
		defer resp.Body.Close()
		buf := make([]byte, 1)
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			first <- err
			return
		}
		first <- nil
		rest, _ := io.ReadAll(resp.Body)
		done <- append(buf, rest...)
	}()
	select {
	case err := <-first:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no first byte")
	}
	return done
}

// SIGTERM: no new connections, the download in flight completes, then
// lanmirror exits 0.
func TestServeSIGTERMDrains(t *testing.T) {
	body := htData(300_000, 21)
	up := newHeldUpstream(t, body)
	addr := htFreeAddr(t)
	p := startLanmirror(t, addr, "serve", "--allow-root", "--config", "", "--http", addr, "--rsync", "",
		"--data", t.TempDir(), "--mirror", up.ts.URL, "--drain-timeout", "60s")
	got := startHeldGet(t, "http://"+addr+"/distfiles/drain-1.tar.gz")
	p.signal(t, syscall.SIGTERM)
	p.waitLog(t, "stopping")
	// The listener closes at once.
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting connections after SIGTERM")
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case err := <-p.done:
		t.Fatalf("exited with a download in flight: %v\n%s", err, p.out.String())
	default:
	}
	up.let()
	select {
	case b := <-got:
		if string(b) != string(body) {
			t.Fatalf("in-flight download: %d bytes, want %d intact", len(b), len(body))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("in-flight download did not complete")
	}
	if err := p.wait(t, 30*time.Second); err != nil {
		t.Fatalf("exit after drain: %v\n%s", err, p.out.String())
	}
}

// A transfer that outlasts --drain-timeout is cut and lanmirror exits.
func TestServeSIGTERMDrainTimeout(t *testing.T) {
	body := htData(300_000, 22)
	up := newHeldUpstream(t, body) // never released during the test
	addr := htFreeAddr(t)
	p := startLanmirror(t, addr, "serve", "--allow-root", "--config", "", "--http", addr, "--rsync", "",
		"--data", t.TempDir(), "--mirror", up.ts.URL, "--drain-timeout", "1s")
	got := startHeldGet(t, "http://"+addr+"/distfiles/stuck-1.tar.gz")
	p.signal(t, syscall.SIGTERM)
	if err := p.wait(t, 30*time.Second); err != nil {
		t.Fatalf("exit: %v\n%s", err, p.out.String())
	}
	select {
	case b := <-got:
		if len(b) >= len(body) {
			t.Fatalf("download completed although upstream never finished (%d bytes)", len(b))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("client not cut after the drain timeout")
	}
}
