//go:build linux && cgo

package main

/*
#cgo LDFLAGS: -lpthread
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// cairn_malloc_arenas limits glibc's malloc to mallocArenas arenas, unless
// the environment sets it (MALLOC_ARENA_MAX, GLIBC_TUNABLES). A constructor:
// it runs as the binary loads, before Go starts its threads.
__attribute__((constructor)) static void cairn_malloc_arenas(void) {
#ifdef M_ARENA_MAX
	if (getenv("MALLOC_ARENA_MAX") == NULL && getenv("GLIBC_TUNABLES") == NULL) {
		mallopt(M_ARENA_MAX, 2); // mallocArenas
	}
#endif
}

static void *cairn_arenas_alloc(void *arg) {
	(void)arg;
	for (int i = 0; i < 100; i++) {
		void *p = malloc(4096 + i);
		if (p != NULL) memset(p, 1, 64);
		free(p);
	}
	return NULL;
}

// cairn_arenas_after starts n threads that allocate, each at once, and
// counts the arenas malloc_info then reports (-1 on an error).
static int cairn_arenas_after(int n) {
	pthread_t t[64];
	if (n > 64) n = 64;
	for (int i = 0; i < n; i++) {
		if (pthread_create(&t[i], NULL, cairn_arenas_alloc, NULL) != 0) return -1;
	}
	for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (f == NULL) return -1;
	malloc_info(0, f);
	fclose(f);
	int heaps = 0;
	for (char *p = buf; (p = strstr(p, "<heap nr=")) != NULL; p++) heaps++;
	free(buf);
	return heaps;
}
*/
import "C"

// mallocArenas is the most arenas glibc's malloc keeps in cairn (issue 15:
// a 10M StartImport's server within 954 MiB; docs/lake.md, "One jemalloc
// arena"). DuckDB's C++ code allocates its own objects (not its data, which
// is jemalloc's) with malloc, on whatever OS thread Go's scheduler runs a
// call on, and glibc gives each new thread an arena of its own up to 8 a
// core, each keeping what was freed in it: a server's arenas held ~40 MiB
// during a load. Two (with jemallocConf's one arena): a 10M StartImport's
// server peaked at 956 and 982 MiB against 1,000-1,016 with one jemalloc
// arena alone, and 982 against main's 1,092 in one alternated pair, at
// +2.3% wall time (docs/benchmarks.md, "Session 34").
const mallocArenas = 2

// mallocArenasAfter starts n threads (at most 64) that allocate with
// malloc and returns how many arenas glibc's malloc then has (-1 on an
// error): TestMallocArenas.
func mallocArenasAfter(n int) int { return int(C.cairn_arenas_after(C.int(n))) }
