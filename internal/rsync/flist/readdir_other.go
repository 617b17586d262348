//go:build !linux

package flist

// readDir reads the entries of dir (see readDirRoot).
func (c *Cache) readDir(dir string, _ int) (files, subdirs []*File, err error) {
	return c.readDirRoot(dir)
}

// openRootFD returns -1: readDir goes through the Root.
func (c *Cache) openRootFD() (int, func()) { return -1, func() {} }
