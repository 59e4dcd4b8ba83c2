//go:build !unix

package ingest

// freeBytes cannot read the free space here: only write errors tell a
// full disk.
func freeBytes(string) (int64, bool) { return 0, false }
