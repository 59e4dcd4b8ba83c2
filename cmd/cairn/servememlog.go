package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
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
// StartImport's memory goes in a server (issue 15), with Event History's
// Go parts (key filter, bucket filters, block cache, tail) and, every
// memLogEvery, the Go heap profile to path.NNN.heap: where an import
// through the server's memory goes. The seen sets of running imports are
// not sampled: they are in "anon" beside Go's part.
func startServeMemLog(path string, lk *lake.Lake, st eventStore) (stop func(), err error) {
	eh, _ := st.(*duckdb.Store)
	tick, n := 0, 0
	return tickLog(path, lakeMemLogEvery,
		"elapsed_s rss_mb anon_mb file_mb lazyfree_mb go_live_mb go_goal_mb go_mapped_mb go_released_mb lake_duckdb_mb lake_temp_mb lake_limit eh_duckdb_mb je_allocated_mb je_active_mb je_resident_mb je_mapped_mb je_retained_mb je_dirty_mb je_muzzy_mb eh_keyfilter_mb eh_bucketindex_mb eh_blockcache_mb eh_tail_mb lake_tags eh_tags",
		func(f io.Writer, elapsed time.Duration) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			u := lk.EngineMemory(ctx)
			var ehu duckdb.MemoryUse
			if eh != nil {
				ehu, _ = eh.MemoryUse(ctx)
			}
			fmt.Fprintf(f, "%.0f %s %.0f %.0f %s %.0f %s %.1f %.1f %.1f %.1f %v %v\n",
				elapsed.Seconds(), processColumns(), mb(sumBytes(u.Engine)), mb(u.EngineTemp), strings.ReplaceAll(cmp.Or(u.EngineLimit, "-"), " ", ""),
				mb(ehu.DuckDBTotal), allocatorMB(), mb(ehu.KeyFilter), mb(ehu.BucketIndex), mb(ehu.BlockCache), mb(ehu.Tail), tagsMB(u.Engine), tagsMB(ehu.DuckDB))
			if tick%int(memLogEvery/lakeMemLogEvery) == 0 {
				if hf, err := os.Create(fmt.Sprintf("%s.%03d.heap", path, n)); err == nil {
					pprof.Lookup("heap").WriteTo(hf, 0)
					hf.Close()
				}
				n++
			}
			tick++
		})
}
