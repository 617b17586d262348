//go:build !linux

package tree

import "os/exec"

// dieWithParent: no parent-death signal here; the rsync child dies of
// SIGPIPE at its next output line once lanmirror is gone.
func dieWithParent(*exec.Cmd) {}
