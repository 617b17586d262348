package interop

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// filterCase is a set of client filter options and the source entries
// they must keep out of the destination.
type filterCase struct {
	name    string
	args    []string
	exclude func(rel string, isDir bool) bool
}

var filterCases = []filterCase{
	{
		name: "exclude-ebuilds",
		args: []string{"--exclude=*.ebuild"},
		exclude: func(rel string, _ bool) bool {
			return strings.HasSuffix(path.Base(rel), ".ebuild")
		},
	},
	{
		name: "only-ebuilds",
		args: []string{"--include=*/", "--include=*.ebuild", "--exclude=*"},
		exclude: func(rel string, isDir bool) bool {
			return !isDir && !strings.HasSuffix(path.Base(rel), ".ebuild")
		},
	},
	{
		name: "anchored",
		// /metadata only at the top; files/ only directories, anywhere;
		// /eclass/*.eclass anchored with a wildcard; eclass.txt stays.
		args: []string{"--exclude=/metadata", "--exclude=files/", "--exclude=/eclass/*.eclass"},
		exclude: func(rel string, isDir bool) bool {
			return rel == "metadata" || (isDir && path.Base(rel) == "files") ||
				(path.Dir(rel) == "eclass" && strings.HasSuffix(rel, ".eclass"))
		},
	},
	{
		name: "double-star-and-include-first",
		// The first matching rule wins: Manifests stay although
		// everything else in packages of app-* categories is excluded.
		args: []string{"--exclude=/profiles/default/**/make.defaults", "--include=/app-*/*/Manifest",
			"--exclude=/app-*/*/*"},
		exclude: func(rel string, isDir bool) bool {
			if strings.HasPrefix(rel, "profiles/default/") && path.Base(rel) == "make.defaults" {
				return true
			}
			parts := strings.Split(rel, "/")
			return len(parts) == 3 && strings.HasPrefix(parts[0], "app-") && parts[2] != "Manifest"
		},
	},
	{
		name: "portage-excludes",
		args: []string{"--exclude=/distfiles", "--exclude=/local", "--exclude=/packages", "--exclude=/.git"},
		exclude: func(rel string, _ bool) bool {
			return rel == "distfiles" || rel == "local" || rel == "packages" || rel == ".git"
		},
	},
}

// TestClientFilters runs client --include/--exclude combinations (sent to
// the server in the filter list, in the pre-29 syntax at protocol 27 and
// the 29+ syntax above) and checks the destination holds exactly the
// entries the rules let through.
func TestClientFilters(t *testing.T) {
	forEachServer(t, func(t *testing.T, kind serverKind) {
		src := newTree(t, 41, 400)
		srv := startServer(t, kind, serverConf{modules: []module{{name: "tree", path: src}}})
		for _, proto := range []int{27, 0} {
			for _, c := range filterCases {
				name := c.name
				if proto > 0 {
					name = fmt.Sprintf("protocol=%d/%s", proto, c.name)
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					dst := filepath.Join(t.TempDir(), "dst")
					args := withProto(proto, append([]string{"-rlpt"}, c.args...)...)
					mustRsync(t, append(args, srv.url("tree/"), dst+"/")...)
					o := archiveCmp(proto)
					o.exclude = c.exclude
					compareTrees(t, src, dst, o)
				})
			}
		}
	})
}
