package tree

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the rsync child die with lanmirror (kill -9
// included), so that no orphan keeps writing into an incoming tree.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
