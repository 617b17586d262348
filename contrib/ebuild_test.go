package contrib

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/lanmirror/lanmirror/internal/testutil"
)

// The ebuilds are valid bash, and every contrib/ file the lanmirror ebuild
// installs exists (Portage itself is not available to run them).
func TestEbuilds(t *testing.T) {
	bash := testutil.RequireTool(t, "bash")
	ebuilds := []string{
		"gentoo/net-misc/lanmirror/lanmirror-9999.ebuild",
		"gentoo/acct-user/lanmirror/lanmirror-0.ebuild",
		"gentoo/acct-group/lanmirror/lanmirror-0.ebuild",
	}
	for _, e := range ebuilds {
		if out, err := exec.Command(bash, "-n", e).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", e, err, out)
		}
	}
	b, err := os.ReadFile(ebuilds[0])
	if err != nil {
		t.Fatal(err)
	}
	eb := string(b)
	for _, want := range []string{"inherit git-r3 go-module systemd", "acct-user/lanmirror", "acct-group/lanmirror", "go-module_live_vendor", "newinitd contrib/openrc/lanmirror", "systemd_dounit contrib/systemd/lanmirror.service"} {
		if !strings.Contains(eb, want) {
			t.Errorf("%s lacks %q", ebuilds[0], want)
		}
	}
	refs := regexp.MustCompile(`\bcontrib/[A-Za-z0-9_./-]+`).FindAllString(eb, -1)
	if len(refs) < 4 {
		t.Fatalf("the ebuild installs only %d contrib files: %q", len(refs), refs)
	}
	for _, r := range refs {
		if _, err := os.Stat("../" + r); err != nil {
			t.Errorf("the ebuild installs %s: %v", r, err)
		}
	}
}
