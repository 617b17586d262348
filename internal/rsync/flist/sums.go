package flist

// FileSum returns the whole-file checksum (-c) of f for the checksum
// kind, computing it with compute. While a directory watcher guards the
// module's current scan (any change, in-place edits included, replaces
// the scan), sums of files of that scan are kept and shared by later
// clients; otherwise every call computes.
func (c *Cache) FileSum(f *File, kind string, compute func(*File) ([]byte, error)) ([]byte, error) {
	c.mu.Lock()
	s := c.snap
	c.mu.Unlock()
	if s == nil || !s.watched {
		return compute(f)
	}
	i, ok := s.index[f.Path]
	if !ok {
		return compute(f)
	}
	if e := s.files[i]; e.Size != f.Size || e.ModTime != f.ModTime || e.ModNsec != f.ModNsec || e.Mode != f.Mode {
		return compute(f) // not the scanned file (a newer or other view)
	}
	key := kind + "\x00" + f.Path
	if v, ok := s.sums.Load(key); ok {
		return v.([]byte), nil
	}
	sum, err := compute(f)
	if err != nil {
		return nil, err
	}
	s.sums.Store(key, sum)
	return sum, nil
}
