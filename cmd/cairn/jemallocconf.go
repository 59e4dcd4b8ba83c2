//go:build linux && cgo

package main

/*
#include <stddef.h>
#include <sys/types.h>
#include <stdlib.h>

// DuckDB's bundled jemalloc (duckdb-go's static library, Linux) reads its
// options from five sources in turn, each overriding the ones before: the
// build's, DuckDB's own (its constructor writes
// "oversize_threshold:268435456,dirty_decay_ms:1000,muzzy_decay_ms:1000,
// narenas:<cores>,..." into duckdb_je_malloc_conf), /etc/malloc.conf, the
// environment variable DUCKDB_JE_MALLOC_CONF, and last this weak symbol,
// which the definition here takes over (jemallocConf says why). jemalloc
// reads it once, when it initializes, before main.
const char *duckdb_je_malloc_conf_2_conf_harder = "narenas:1,muzzy_decay_ms:0";

int duckdb_je_mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);

static long cairn_je_opt_ssize(const char *name) {
	ssize_t v = 0;
	size_t n = sizeof(v);
	if (duckdb_je_mallctl(name, &v, &n, NULL, 0) != 0) return -1;
	return (long)v;
}

static long cairn_je_opt_unsigned(const char *name) {
	unsigned v = 0;
	size_t n = sizeof(v);
	if (duckdb_je_mallctl(name, &v, &n, NULL, 0) != 0) return -1;
	return (long)v;
}
*/
import "C"

import "unsafe"

// jemallocConf is the jemalloc options cairn sets for DuckDB's allocator,
// the whole process's (Lake's and Event History's DuckDB; Go's own memory
// is Go's) (issue 15: a 10M StartImport's server within 954 MiB; docs/lake.md,
// "One jemalloc arena"):
//   - narenas:1: DuckDB's allocations go to one arena, not one a core. A
//     load's transactions run on whatever OS thread Go's scheduler gives the
//     goroutine, and jemalloc binds each thread to an arena: the load's
//     memory went through both arenas of a 2-core machine in turn, and each
//     kept the pages of its last transaction's peak as its own, freed but
//     not given back (its 1 s decay), where the other could not reuse them
//     (the server's jemalloc resident 231-284 MiB at its peaks against an
//     offline load's 98-136). Lake's queries run on one thread (lake.threads
//     1) and Event History's DuckDB on few: one arena costs them a lock that
//     the threads' caches mostly avoid.
//   - muzzy_decay_ms:0: pages past their dirty decay are given back
//     (MADV_DONTNEED) rather than left muzzy (MADV_FREE), which the kernel
//     takes back only when it runs short of memory: until then they stay in
//     the RSS (LazyFree, 16-54 MiB of a server's during a load).
//
// Being the last source, it overrides these two options in
// DUCKDB_JE_MALLOC_CONF too; the environment still sets the others
// (dirty_decay_ms, ...).
const jemallocConf = "narenas:1,muzzy_decay_ms:0"

// jemallocOpts reads jemalloc's opt.narenas and opt.muzzy_decay_ms (-1
// where they cannot be read).
func jemallocOpts() (narenas, muzzyDecayMS int64) {
	n := C.CString("opt.narenas")
	defer C.free(unsafe.Pointer(n))
	m := C.CString("opt.muzzy_decay_ms")
	defer C.free(unsafe.Pointer(m))
	return int64(C.cairn_je_opt_unsigned(n)), int64(C.cairn_je_opt_ssize(m))
}
