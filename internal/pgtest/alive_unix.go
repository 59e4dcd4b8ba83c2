//go:build unix

package pgtest

import (
	"errors"
	"syscall"
)

// alive reports whether a process of that ID runs (or may: one of
// another user's that cannot be signalled counts as running).
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
