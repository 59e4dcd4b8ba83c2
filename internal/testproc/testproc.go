// Package testproc holds what tests need of the child processes they start
// (cairn serve nodes, moto_server, crash children).
package testproc

import "os/exec"

// DieWithParent makes cmd's process get SIGKILL when the test process that
// started it dies, where the platform can (Linux: PR_SET_PDEATHSIG). A test
// binary killed by its timeout, by CI or by hand otherwise leaves its
// servers running, holding ports, files and memory. Call it before Start.
func DieWithParent(cmd *exec.Cmd) { dieWithParent(cmd) }
