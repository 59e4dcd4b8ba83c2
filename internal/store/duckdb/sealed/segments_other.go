//go:build !linux

package sealed

import "os"

// fdatasync is fsync where the platform has no fdatasync in package syscall.
func fdatasync(f *os.File) error { return f.Sync() }
