package main

import "syscall"

// syscall0 probes whether a process exists.
const syscall0 = syscall.Signal(0)
