package testproc

import (
	"os/exec"
	"syscall"
)

// The signal goes when the thread that forked the child exits; Go's runtime
// keeps its threads for the process's life unless a goroutine locked to one
// ends, which the tests that start children do not do.
func dieWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
