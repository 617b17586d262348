package distcache

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestStoreDirsOwnedByDataOwner: a root process (the daemon before it
// drops privileges) gives the directories it creates to the owner of the
// data directory, so the daemon can write in them after the switch.
func TestStoreDirsOwnedByDataOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	const uid, gid = 65534, 65534
	dir := t.TempDir()
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	// A directory left root-owned by an older run is repaired too.
	if err := os.Mkdir(filepath.Join(dir, "state"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := openTestStore(t, dir)
	for _, d := range []string{".partial", s.partial, "state", "state/meta", "distfiles"} {
		fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(d)))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != uid || st.Gid != gid {
			t.Errorf("%s owned by %d:%d, want %d:%d", d, st.Uid, st.Gid, uid, gid)
		}
	}
	// A store of a root-owned data directory leaves ownership alone.
	plain := openTestStore(t, t.TempDir())
	if plain.owner != nil {
		t.Errorf("owner set for a root-owned data directory: %v", *plain.owner)
	}
}
