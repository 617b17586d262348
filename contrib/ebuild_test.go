package contrib

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/lanmirror/lanmirror/internal/testutil"
)

// ebuildStubs stands in for Portage: inherit records the eclasses, the
// install helpers print what they would install and fail when a source
// file does not exist (the ebuild runs in the repository root, as in
// ${S}).
const ebuildStubs = `set -eu
inherit() { echo "inherit $*"; }
acct-user_add_deps() { :; }
einstalldocs() { echo "einstalldocs"; }
check() { [ -e "$1" ] || { echo "MISSING $1"; exit 1; }; }
dobin() { check "$1"; echo "dobin $1"; }
newinitd() { check "$1"; echo "newinitd $1 $2"; }
newconfd() { check "$1"; echo "newconfd $1 $2"; }
systemd_dounit() { check "$1"; echo "systemd_dounit $1"; }
insinto() { echo "insinto $1"; }
newins() { check "$1"; echo "newins $1 $2"; }
doins() { check "$1"; echo "doins $1"; }
keepdir() { echo "keepdir $1"; }
fowners() { echo "fowners $*"; }
fperms() { echo "fperms $*"; }
`

// The ebuild, sourced by bash with Portage's helpers stubbed: its
// variables are set, and src_install installs the service files, the
// logrotate snippet and the binary, all of which exist in the repository.
func TestLanmirrorEbuildInstalls(t *testing.T) {
	bash := testutil.RequireTool(t, "bash")
	for _, e := range []string{
		"gentoo/acct-user/lanmirror/lanmirror-0.ebuild",
		"gentoo/acct-group/lanmirror/lanmirror-0.ebuild",
	} {
		out, err := exec.Command(bash, "-c", ebuildStubs+`. "`+e+`"; echo "EAPI=$EAPI DESCRIPTION=$DESCRIPTION"`).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "EAPI=8 DESCRIPTION=") {
			t.Errorf("%s: %v\n%s", e, err, out)
		}
	}
	script := ebuildStubs + `
. contrib/gentoo/net-misc/lanmirror/lanmirror-9999.ebuild
echo "EAPI=$EAPI"
echo "RDEPEND=$(echo $RDEPEND)"
touch lanmirror.ebuild-test-binary
trap 'rm -f lanmirror.ebuild-test-binary' EXIT
dobin() { check lanmirror.ebuild-test-binary; echo "dobin $1"; }
src_install
`
	cmd := exec.Command(bash, "-c", script)
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("src_install: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for _, want := range []string{
		"inherit git-r3 go-module systemd",
		"EAPI=8",
		"RDEPEND=acct-group/lanmirror acct-user/lanmirror",
		"dobin lanmirror",
		"newinitd contrib/openrc/lanmirror lanmirror",
		"newconfd contrib/openrc/lanmirror.confd lanmirror",
		"systemd_dounit contrib/systemd/lanmirror.service",
		"newins contrib/systemd/lanmirror.sysusers lanmirror.conf",
		"insinto /etc/logrotate.d",
		"newins contrib/logrotate/lanmirror lanmirror",
		"insinto /etc/lanmirror",
		"newins contrib/lanmirror.toml lanmirror.toml.example",
		"fowners lanmirror:lanmirror /var/log/lanmirror",
		"fowners lanmirror:lanmirror /var/cache/lanmirror",
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("ebuild does not %q:\n%s", want, out)
		}
	}
}
