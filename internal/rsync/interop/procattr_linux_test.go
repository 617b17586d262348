package interop

import (
	"os/exec"
	"syscall"
)

// dieWithTest makes cmd receive SIGKILL if the test binary dies without
// cleaning up (a -timeout panic, a crash, a kill), so no server outlives
// the run.
func dieWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
