package main

import (
	"os"
	"syscall"
)

// syscall0 probes whether a process exists.
const syscall0 = syscall.Signal(0)

// ownedByUs reports whether fi is a file of the user running cairn.
func ownedByUs(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}
