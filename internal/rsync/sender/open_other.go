//go:build !linux

package sender

import (
	"errors"
	"os"
)

// opener opens the session's source files through the Root.
type opener struct {
	root *os.Root
}

func newOpener(root *os.Root) *opener { return &opener{root: root} }

// open opens the regular file at path (module-relative) into f.
func (o *opener) open(path string, f *srcFile) error { return openRoot(o.root, path, f) }

// openListed is open (the file list's size is not used here).
func (o *opener) openListed(path string, _ int64, f *srcFile) error { return o.open(path, f) }

// close releases nothing.
func (o *opener) close() {}

var errNoRaw = errors.New("raw descriptors are not used on this system")

func rawRead(int, []byte) (int, error) { return 0, errNoRaw }

func rawClose(int) error { return errNoRaw }
