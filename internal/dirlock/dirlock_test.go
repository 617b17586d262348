package dirlock

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestPinExcludesRemover(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "snap")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	pin, err := Pin(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !pin.Held() {
		t.Fatal("flock unavailable on the test's file system")
	}
	// A second reader shares it.
	pin2, err := Pin(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := TryExclusive(dir); !errors.Is(err, ErrBusy) {
		t.Fatalf("exclusive lock while pinned: %v", err)
	}
	pin.Close()
	if _, err := TryExclusive(dir); !errors.Is(err, ErrBusy) {
		t.Fatalf("exclusive lock while pinned by the second reader: %v", err)
	}
	pin2.Close()
	ex, err := TryExclusive(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Close()
	if _, err := TryExclusive(dir); !errors.Is(err, ErrBusy) {
		t.Fatalf("second exclusive lock: %v", err)
	}
}

// A reader that comes while the remover holds the directory waits; when
// the remover renames the directory away, the reader does not pin it.
func TestPinWaitsForRemover(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "snap")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ex, err := TryExclusive(dir)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		l, err := Pin(dir)
		if err == nil {
			l.Close()
		}
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := os.Rename(dir, filepath.Join(base, ".gone")); err != nil {
		t.Fatal(err)
	}
	ex.Close()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("pin of a removed directory: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Pin did not return")
	}

	// Released without removal: the reader gets it.
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ex, err = TryExclusive(dir)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		l, err := Pin(dir)
		if err == nil {
			l.Close()
		}
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	ex.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
