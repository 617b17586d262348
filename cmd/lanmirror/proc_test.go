package main

import (
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lanmirror/lanmirror/internal/testutil"
)

// lmProc is a lanmirror command running in a process of its own (this
// test binary, see htExecMain).
type lmProc struct {
	cmd  *exec.Cmd
	out  *testutil.Buffer
	done chan error
}

// startLanmirror runs `lanmirror args...` and, when waitAddr is set, waits
// until it accepts connections there. The process is killed (by its PID)
// at the end of the test if still running.
func startLanmirror(t *testing.T, waitAddr string, args ...string) *lmProc {
	t.Helper()
	return startProc(t, htBinary(t), waitAddr, args...)
}

// startProc is startLanmirror with the lanmirror binary bin.
func startProc(t *testing.T, bin, waitAddr string, args ...string) *lmProc {
	t.Helper()
	p := &lmProc{cmd: exec.Command(bin, args...), out: &testutil.Buffer{}, done: make(chan error, 1)}
	p.cmd.Env = append(os.Environ(), htExecMain+"=1")
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	if waitAddr == "" {
		return p
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", waitAddr, time.Second)
		if err == nil {
			c.Close()
			return p
		}
		select {
		case err := <-p.done:
			t.Fatalf("lanmirror %v exited at start: %v\n%s", args, err, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("lanmirror does not listen on %s:\n%s", waitAddr, p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitLog waits until the process has written substr.
func (p *lmProc) waitLog(t *testing.T, substr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(p.out.String(), substr) {
		if time.Now().After(deadline) {
			t.Fatalf("lanmirror did not log %q:\n%s", substr, p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wait waits for the exit and returns its error.
func (p *lmProc) wait(t *testing.T, limit time.Duration) error {
	t.Helper()
	select {
	case err := <-p.done:
		return err
	case <-time.After(limit):
		t.Fatalf("lanmirror did not exit within %v:\n%s", limit, p.out.String())
		return nil
	}
}

func (p *lmProc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *lmProc) stop(t *testing.T) {
	t.Helper()
	p.signal(t, syscall.SIGTERM)
	if err := p.wait(t, 15*time.Second); err != nil {
		t.Fatalf("lanmirror exit: %v\n%s", err, p.out.String())
	}
}
