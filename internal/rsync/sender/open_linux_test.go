package sender

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestOpenerFifo: a listed file replaced by a fifo is refused at once
// instead of blocking the session until a writer appears.
func TestOpenerFifo(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	o := newOpener(root)
	defer o.close()
	done := make(chan error, 1)
	go func() {
		var f srcFile
		err := o.open("fifo", &f)
		if err == nil {
			f.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, errNotRegular) {
			t.Errorf("fifo: %v, want %v", err, errNotRegular)
		}
	case <-time.After(10 * time.Second):
		// Unblock the open so the goroutine ends.
		if w, err := os.OpenFile(filepath.Join(dir, "fifo"), os.O_WRONLY, 0); err == nil {
			w.Close()
		}
		t.Fatal("opening a fifo blocked")
	}
}
