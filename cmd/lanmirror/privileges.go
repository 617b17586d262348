package main

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"

	"github.com/lanmirror/lanmirror/internal/config"
)

// identity is the user and groups the process switches to.
type identity struct {
	uid    int
	gids   []int // primary first, then supplementary
	user   string
	groups string
}

// rsyncIdentity returns the uid/gid the rsyncd.conf modules name (ok is
// false when none does). lanmirror is one process, so every module must
// name the same ones.
func rsyncIdentity(modules []config.Module) (uid, gid string, ok bool, err error) {
	for _, m := range modules {
		if m.UID == "" && m.GID == "" {
			continue
		}
		if !ok {
			uid, gid, ok = m.UID, m.GID, true
			continue
		}
		if m.UID != uid || m.GID != gid {
			return "", "", false, fmt.Errorf("modules name different uid/gid (%q/%q and %q/%q for %s): lanmirror runs as one user, set the same uid and gid for every module",
				uid, gid, m.UID, m.GID, m.Name)
		}
	}
	return uid, gid, ok, nil
}

// lookupIdentity resolves user and group names or numbers. gid may list
// several groups (separated by spaces or commas); the first is primary.
// An empty uid keeps the current user, an empty gid the user's group.
func lookupIdentity(uidName, gidList string) (identity, error) {
	id := identity{uid: os.Getuid(), user: uidName, groups: gidList}
	var primary int = -1
	if uidName != "" {
		u, err := lookupUser(uidName)
		if err != nil {
			return id, err
		}
		if id.uid, err = strconv.Atoi(u.Uid); err != nil {
			return id, fmt.Errorf("uid %s: %w", uidName, err)
		}
		if g, err := strconv.Atoi(u.Gid); err == nil {
			primary = g
		}
	}
	names := strings.FieldsFunc(gidList, func(c rune) bool { return c == ',' || c == ' ' || c == '\t' })
	for _, n := range names {
		g, err := lookupGroup(n)
		if err != nil {
			return id, err
		}
		id.gids = append(id.gids, g)
	}
	if len(id.gids) == 0 {
		if primary < 0 {
			primary = os.Getgid()
		}
		id.gids = []int{primary}
	}
	return id, nil
}

func lookupUser(name string) (*user.User, error) {
	if _, err := strconv.Atoi(name); err == nil {
		u, err := user.LookupId(name)
		if err != nil {
			return nil, fmt.Errorf("uid %s: %w", name, err)
		}
		return u, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("uid %s: %w", name, err)
	}
	return u, nil
}

func lookupGroup(name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil {
		return n, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil && name == "nobody" {
		// Debian and others call the nobody group "nogroup".
		g, err = user.LookupGroup("nogroup")
	}
	if err != nil {
		return 0, fmt.Errorf("gid %s: %w", name, err)
	}
	return strconv.Atoi(g.Gid)
}

// checkDataWritable fails early when the components that write below
// --data (the distfiles cache, the tree mirror) can no longer do so as the
// user the whole process now runs as.
func checkDataWritable(cfg *config.Serve, user string) error {
	if cfg.HTTPAddr == "" && len(cfg.TreeUpstream) == 0 {
		return nil
	}
	const wOK = 2 // access(2) W_OK
	if _, err := os.Stat(cfg.DataDir); err != nil {
		return nil // created later by its component, or reported by it
	}
	if err := syscall.Access(cfg.DataDir, wOK); err != nil {
		return fmt.Errorf("after switching to user %s, --data %s is not writable: %w; "+
			"give that user the directory (chown -R) or run as another user (--user, uid/gid in the rsync modules)", user, cfg.DataDir, err)
	}
	return nil
}

// switchIdentity sets supplementary groups, group and user, in that order,
// and checks that root cannot be regained.
func switchIdentity(id identity) error {
	if err := syscall.Setgroups(id.gids[1:]); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(id.gids[0]); err != nil {
		return fmt.Errorf("setgid: %w", err)
	}
	if err := syscall.Setuid(id.uid); err != nil {
		return fmt.Errorf("setuid: %w", err)
	}
	if id.uid != 0 && (os.Getuid() != id.uid || os.Geteuid() != id.uid || syscall.Setuid(0) == nil) {
		return fmt.Errorf("still able to act as root after setuid(%d)", id.uid)
	}
	return nil
}
