//go:build unix

package ingest

import "syscall"

// freeBytes returns the space of dir's file system available to cairn.
func freeBytes(dir string) (int64, bool) {
	if dir == "" {
		return 0, false
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return int64(st.Bavail) * int64(st.Bsize), true //nolint:unconvert // field types differ by platform
}
