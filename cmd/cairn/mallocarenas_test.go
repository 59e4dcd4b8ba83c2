//go:build linux && cgo

package main

import (
	"os"
	"testing"
)

// TestMallocArenas: glibc's malloc keeps at most mallocArenas arenas
// however many threads allocate (cairn_malloc_arenas), unless the
// environment chose.
func TestMallocArenas(t *testing.T) {
	if os.Getenv("MALLOC_ARENA_MAX") != "" || os.Getenv("GLIBC_TUNABLES") != "" {
		t.Skip("the environment sets glibc's arenas")
	}
	if got := mallocArenasAfter(16); got < 1 || got > mallocArenas {
		t.Fatalf("malloc_info reports %d arenas after 16 threads allocated, want 1 to %d", got, mallocArenas)
	}
}
