package main

import (
	"runtime"
	"syscall"
)

// lowPriorityThread locks the calling goroutine to its thread and gives
// the thread the lowest CPU priority (nice 19). The goroutine must end
// without unlocking: Go then ends the thread, so no other goroutine ever
// runs on it (an unprivileged process cannot raise a priority back).
func lowPriorityThread() {
	runtime.LockOSThread()
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), 19)
}
