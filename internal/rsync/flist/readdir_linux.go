package flist

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// readDir reads the entries of dir as readDirRoot does, with fewer
// system calls: the directory is opened with one openat2(RESOLVE_BENEATH)
// relative to the module root (the kernel keeps the lookup inside the
// module, as the Root does with one openat per path component), and its
// entries are read with getdents and one fstatat (and readlinkat for
// symlinks) each, relative to that descriptor, without the os package's
// per-entry objects. Whatever openat2 cannot do (an old kernel, a
// directory replaced by a symlink) goes through the Root instead.
func (c *Cache) readDir(dir string, rootfd int) (files, subdirs []*File, err error) {
	if rootfd < 0 {
		return c.readDirRoot(dir)
	}
	how := unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	}
	var fd int
	for {
		fd, err = unix.Openat2(rootfd, dir, &how)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return c.readDirRoot(dir)
	}
	defer unix.Close(fd)
	var names []string
	buf := make([]byte, 32*1024)
	for {
		n, err := unix.Getdents(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			c.log.Warn("rsync: cannot read directory", "dir", dir, "err", err)
			break
		}
		if n <= 0 {
			break
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
	var st unix.Stat_t
	for _, name := range names {
		rel := name
		if dir != "." {
			rel = dir + "/" + name
		}
		if err := fstatat(fd, name, &st); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return nil, nil, fmt.Errorf("stat %s: %w", rel, &os.PathError{Op: "lstat", Path: rel, Err: err})
		}
		f, err := fileOfStat(fd, name, rel, &st)
		if err != nil {
			c.log.Warn("rsync: skipping entry", "path", rel, "err", err)
			continue
		}
		files, subdirs = c.sortEntry(f, files, subdirs)
	}
	return files, subdirs, nil
}

// openRootFD opens the module root for one scan's readDir calls and
// returns its descriptor (-1 if it cannot) and the function that closes
// it.
func (c *Cache) openRootFD() (int, func()) {
	d, err := c.root.Open(".")
	if err != nil {
		return -1, func() {}
	}
	return int(d.Fd()), func() { d.Close() }
}

func fstatat(dirfd int, name string, st *unix.Stat_t) error {
	for {
		err := unix.Fstatat(dirfd, name, st, unix.AT_SYMLINK_NOFOLLOW)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// fileOfStat builds an entry as fileOf does, from lstat information of
// name in the directory dirfd (module-relative path rel).
func fileOfStat(dirfd int, name, rel string, st *unix.Stat_t) (*File, error) {
	f := &File{Path: rel, Name: rel}
	perm := st.Mode & 0o7777
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		f.Mode = ModeReg | perm
		f.Size = st.Size
	case unix.S_IFDIR:
		f.Mode = ModeDir | perm
		f.Size = st.Size
	case unix.S_IFLNK:
		f.Mode = ModeLink | perm
		t, err := readlinkat(dirfd, name, st.Size)
		if err != nil {
			return nil, fmt.Errorf("readlink %s: %w", rel, err)
		}
		f.LinkTarget = t
		f.Size = int64(len(t))
	default:
		return nil, nil // devices, fifos, sockets are not served
	}
	f.ModTime, f.ModNsec = st.Mtim.Sec, int32(st.Mtim.Nsec)
	f.UID, f.GID = st.Uid, st.Gid
	return f, nil
}

// readlinkat reads a symlink's target (size: its lstat size, a hint).
func readlinkat(dirfd int, name string, size int64) (string, error) {
	n := max(int(size)+1, 128)
	for n <= 1<<20 {
		b := make([]byte, n)
		k, err := unix.Readlinkat(dirfd, name, b)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return "", &os.PathError{Op: "readlinkat", Path: name, Err: err}
		}
		if k < n {
			return string(b[:k]), nil
		}
		n *= 2
	}
	return "", &os.PathError{Op: "readlinkat", Path: name, Err: unix.ENAMETOOLONG}
}
