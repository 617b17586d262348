//go:build !linux

package interop

import "os/exec"

// dieWithTest does nothing where the parent-death signal does not exist.
func dieWithTest(cmd *exec.Cmd) {}
