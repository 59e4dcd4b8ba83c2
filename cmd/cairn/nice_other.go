//go:build !linux

package main

// lowPriorityThread does nothing where thread priorities are not set.
func lowPriorityThread() {}
