//go:build linux && amd64 && cgo

package duckdb

/*
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
int duckdb_je_mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);

static int cairn_je_size(const char *name, size_t *v) {
	size_t n = sizeof(*v);
	return duckdb_je_mallctl(name, v, &n, NULL, 0);
}

static int cairn_je_refresh(void) {
	uint64_t epoch = 1;
	size_t n = sizeof(epoch);
	return duckdb_je_mallctl("epoch", &epoch, &n, &epoch, n);
}
*/
import "C"

import "unsafe"

// allocatorStats reads the process's jemalloc counters (DuckDB's
// allocator on Linux/amd64, linked into this binary with the duckdb-go
// bindings): bytes allocated and live, in active pages, resident, mapped
// and retained (address space kept unmapped-from-use), and the pages it
// freed and keeps (dirty, muzzy) in bytes. ok is false when they cannot be
// read.
func allocatorStats() (s AllocatorStats, ok bool) {
	var page int64 // jemalloc's page size: pdirty and pmuzzy count pages
	if C.cairn_je_refresh() != 0 {
		return s, false
	}
	for _, f := range []struct {
		name string
		v    *int64
	}{
		{"stats.allocated", &s.Allocated}, {"stats.active", &s.Active}, {"stats.resident", &s.Resident},
		{"stats.mapped", &s.Mapped}, {"stats.retained", &s.Retained}, {"stats.metadata", &s.Metadata},
		{"stats.arenas.4096.pdirty", &s.Dirty}, {"stats.arenas.4096.pmuzzy", &s.Muzzy},
		{"arenas.page", &page},
	} {
		name := C.CString(f.name)
		var v C.size_t
		rc := C.cairn_je_size(name, &v)
		C.free(unsafe.Pointer(name))
		if rc != 0 {
			return s, false
		}
		*f.v = int64(v)
	}
	s.Dirty *= page
	s.Muzzy *= page
	return s, true
}
