package distcache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// A daemon started as root opens the store before it drops privileges to
// the rsyncd.conf's uid/gid, and the data directory then belongs to that
// user. Directories the store creates while still root are therefore
// given to the data directory's owner, or the daemon could not write in
// them once it has switched.

// initOwner records whom to give new directories: the data directory's
// owner, when the process runs as root and the directory is not root's.
func (s *Store) initOwner() {
	if os.Geteuid() != 0 {
		return
	}
	fi, err := os.Stat(s.dir)
	if err != nil {
		return
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 {
		return
	}
	s.owner = &[2]int{int(st.Uid), int(st.Gid)}
}

// mkdir creates the directory name below the root unless it exists (its
// parent must exist) and, as initOwner decided, gives it to the data
// directory's owner (also when it exists: a root-owned one left by an
// older run would keep the daemon from writing).
func (s *Store) mkdir(name string) error {
	if err := s.root.Mkdir(name, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return s.own(name)
}

// own gives name to the data directory's owner when running as root.
func (s *Store) own(name string) error {
	if s.owner == nil {
		return nil
	}
	if err := s.root.Lchown(name, s.owner[0], s.owner[1]); err != nil {
		return fmt.Errorf("give %s to uid %d: %w", name, s.owner[0], err)
	}
	return nil
}
