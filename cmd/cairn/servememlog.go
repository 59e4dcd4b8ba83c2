package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cairn-audit/cairn/internal/lake"
	"github.com/cairn-audit/cairn/internal/store/duckdb"
)

// startServeMemLog writes, every lakeMemLogEvery until stop, a line to
// path: the server's resident set by kind (/proc/self/smaps_rollup), Go's
// heap (live, the collector's goal, mapped, given back), CloudTrail Lake's
// DuckDB by tag with its memory_limit (lk.EngineMemory) and Event
// History's DuckDB by tag (st, when it is DuckDB's store): where a
// StartImport's memory goes in a server (issue 15). The seen sets of
// running imports are not sampled: they are in "anon" beside Go's part.
func startServeMemLog(path string, lk *lake.Lake, st eventStore) (stop func(), err error) {
	eh, _ := st.(*duckdb.Store)
	return tickLog(path, lakeMemLogEvery,
		"elapsed_s rss_mb anon_mb file_mb lazyfree_mb go_live_mb go_goal_mb go_mapped_mb go_released_mb lake_duckdb_mb lake_temp_mb lake_limit eh_duckdb_mb je_allocated_mb je_active_mb je_resident_mb je_mapped_mb je_retained_mb je_dirty_mb je_muzzy_mb lake_tags eh_tags",
		func(f io.Writer, elapsed time.Duration) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			u := lk.EngineMemory(ctx)
			var ehu duckdb.MemoryUse
			if eh != nil {
				ehu, _ = eh.MemoryUse(ctx)
			}
			fmt.Fprintf(f, "%.0f %s %.0f %.0f %s %.0f %s %v %v\n",
				elapsed.Seconds(), processColumns(), mb(sumBytes(u.Engine)), mb(u.EngineTemp), strings.ReplaceAll(cmp.Or(u.EngineLimit, "-"), " ", ""),
				mb(ehu.DuckDBTotal), allocatorMB(), tagsMB(u.Engine), tagsMB(ehu.DuckDB))
		})
}
