package testutil

import (
	"os"
	"os/exec"
	"testing"
)

// AllowSkipEnv names the environment variable that lets a test whose
// external tool is missing skip instead of fail. CI never sets it: a run
// without rsync, wget, curl, ... must fail, not pass by testing nothing.
const AllowSkipEnv = "LANMIRROR_ALLOW_SKIP"

// RequireTool returns the path of the external program name (rsync, wget,
// curl, chromium, ...). When it is not installed the test fails, saying
// what to install, unless LANMIRROR_ALLOW_SKIP=1 is set, in which case it
// is skipped.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	MissingTool(t, name+" is not installed (.ci/run installs it): "+err.Error())
	return ""
}

// MissingTool ends the test for a missing prerequisite described by why:
// a failure, or a skip when LANMIRROR_ALLOW_SKIP=1.
func MissingTool(t testing.TB, why string) {
	t.Helper()
	if os.Getenv(AllowSkipEnv) == "1" {
		t.Skip(why + " (skipped: " + AllowSkipEnv + "=1)")
	}
	t.Fatal(why + " (set " + AllowSkipEnv + "=1 to skip instead)")
}
