package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cairn-audit/cairn/internal/lake"
	lakeduckdb "github.com/cairn-audit/cairn/internal/lake/duckdb"
)

// lakeMemLogEvery is how often --memlog writes a line during an offline
// --into load.
const lakeMemLogEvery = 5 * time.Second

// startLakeMemLog writes, every lakeMemLogEvery until stop, a line to path:
// the process's resident set by kind (/proc/self/smaps_rollup: anonymous,
// file-backed, freed but not yet taken back (LazyFree)), Go's heap (live,
// the collector's goal, what the runtime holds mapped and what it gave
// back to the kernel), and what the load holds by part
// (lake.Sink.MemoryUse: DuckDB's memory by tag, its temporary files and
// its memory_limit, the seen set): where a Lake load's memory goes (issue 15).
func startLakeMemLog(path string, sink *lake.Sink) (stop func(), err error) {
	return tickLog(path, lakeMemLogEvery,
		"elapsed_s rss_mb anon_mb file_mb lazyfree_mb go_live_mb go_goal_mb go_mapped_mb go_released_mb duckdb_mb duckdb_temp_mb seen_mb seen_keys duckdb_limit je_allocated_mb je_active_mb je_resident_mb je_mapped_mb je_retained_mb je_dirty_mb je_muzzy_mb duckdb_tags",
		func(f io.Writer, elapsed time.Duration) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			u := sink.MemoryUse(ctx)
			cancel()
			fmt.Fprintf(f, "%.0f %s %.0f %.0f %.0f %d %s %s %v\n",
				elapsed.Seconds(), processColumns(), mb(sumBytes(u.Engine)), mb(u.EngineTemp), mb(u.Seen), u.SeenKeys,
				strings.ReplaceAll(cmp.Or(u.EngineLimit, "-"), " ", ""), allocatorMB(), tagsMB(u.Engine))
		})
}

// allocatorMB is DuckDB's allocator's counters (lakeduckdb.Allocator) as
// the memlogs' last five columns in MiB: allocated, active, resident,
// mapped, retained ("- - - - -" where they cannot be read).
func allocatorMB() string {
	a, ok := lakeduckdb.Allocator()
	if !ok {
		return "- - - - - - -"
	}
	return fmt.Sprintf("%.0f %.0f %.0f %.0f %.0f %.0f %.0f", mb(a.Allocated), mb(a.Active), mb(a.Resident), mb(a.Mapped), mb(a.Retained), mb(a.Dirty), mb(a.Muzzy))
}
