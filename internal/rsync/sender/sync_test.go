package sender

import (
	"strings"
	"testing"
)

// portageSkip are the top-level directories Portage excludes, and the
// symlink pointing outside the tree that --safe-links drops.
var portageSkip = []string{"distfiles", "local", "packages", ".git", "profiles/link-out"}

// TestPortageSyncProtocol31 mirrors a generated tree with Portage's exact
// options (without -z) at the client's default protocol and compares
// the result byte for byte.
func TestPortageSyncProtocol31(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src, 300)
	srv := startServer(t, src, true)
	dst := t.TempDir()
	out, err := rsyncCmd(t, append(without(portageOpts, "--compress"), srv.url(), dst+"/")...)
	if err != nil {
		t.Fatalf("rsync: %v\n%s\nserver log:\n%s", err, out, srv.logs)
	}
	if serr := srv.sessionErr(); serr != nil {
		t.Fatalf("session: %v\n%s", serr, out)
	}
	compareTrees(t, src, dst, portageSkip...)
	if !strings.Contains(out, "Number of regular files transferred: 305") {
		t.Errorf("unexpected stats:\n%s", out)
	}
}
