//go:build !linux

package atomicfile

import "os"

// Datasync makes f's data durable: fsync where fdatasync is not at hand.
func Datasync(f *os.File) error { return f.Sync() }
