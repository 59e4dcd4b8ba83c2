// Package testproc holds what tests need of the child processes they start
// (cairn serve nodes, moto_server, crash children).
package testproc

import (
	"os/exec"
	"runtime"
	"sync"
)

// Start starts cmd so that its process gets SIGKILL when the test process
// that started it dies, where the platform can (Linux: PR_SET_PDEATHSIG). A
// test binary killed by its timeout, by CI or by hand otherwise leaves its
// servers running, holding ports, files and memory.
//
// The kernel sends that signal when the *thread* that forked the child ends,
// not the process, and a Go program ends a thread whenever a goroutine
// locked to it returns without unlocking (Lake's low-priority workers do,
// on purpose). A child forked on such a thread would be killed in the
// middle of a test (seen: moto_server gone, "connection refused"). So every
// child is forked on one thread kept for the process's life.
func Start(cmd *exec.Cmd) error {
	dieWithParent(cmd)
	forker.once.Do(func() {
		forker.starts = make(chan start)
		go func() {
			runtime.LockOSThread() // never unlocked: this thread stays
			for s := range forker.starts {
				s.done <- s.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	forker.starts <- start{cmd, done}
	return <-done
}

type start struct {
	cmd  *exec.Cmd
	done chan error
}

var forker struct {
	once   sync.Once
	starts chan start
}
