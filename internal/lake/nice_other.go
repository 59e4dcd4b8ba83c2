//go:build !linux

package lake

// lowPriorityThread does nothing where thread priorities are not set
// (queries are still bounded by the scheduler and Lake's thread count).
func lowPriorityThread() {}
