package testproc

import (
	"os/exec"
	"syscall"
)

// dieWithParent asks for SIGKILL when the thread that forks cmd ends
// (Start forks on a thread that never does).
func dieWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
