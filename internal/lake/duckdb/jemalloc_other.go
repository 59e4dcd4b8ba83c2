//go:build !(linux && amd64 && cgo)

package duckdb

// allocatorStats reports nothing where DuckDB's bundled jemalloc is not
// reached from Go (jemalloc_linux_amd64.go).
func allocatorStats() (AllocatorStats, bool) { return AllocatorStats{}, false }
