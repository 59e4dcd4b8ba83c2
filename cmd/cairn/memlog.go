package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/cairn-audit/cairn/internal/store/duckdb"
)

// memLogEvery is how often --memlog writes a line (and a heap profile).
const memLogEvery = 15 * time.Second

// startMemLog writes, every memLogEvery until stop, a line to path: the
// process's RSS, the Go heap and what the store holds by part
// (duckdb.Store.MemoryUse; st may be nil, or closed by then), and the Go
// heap profile to path.NNN.heap: where an import's memory goes (issue 15).
func startMemLog(path string, st *duckdb.Store) (stop func(), err error) {
	n := 0
	return tickLog(path, memLogEvery,
		"elapsed_s rss_mb go_heap_inuse_mb go_sys_mb duckdb_mb keyfilter_mb bucketindex_mb buckets blockcache_mb tail_mb partitions duckdb_tags",
		func(f io.Writer, elapsed time.Duration) {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			var u duckdb.MemoryUse
			if st != nil {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				u, _ = st.MemoryUse(ctx) // a closed store: its parts stay 0
				cancel()
			}
			fmt.Fprintf(f, "%.0f %.0f %.0f %.0f %.0f %.1f %.1f %d %.1f %.1f %d %v\n",
				elapsed.Seconds(), mb(procKB("/proc/self/status")["VmRSS"]), mb(int64(ms.HeapInuse)), mb(int64(ms.Sys)),
				mb(u.DuckDBTotal), mb(u.KeyFilter), mb(u.BucketIndex), u.Buckets, mb(u.BlockCache), mb(u.Tail), u.Partitions, tagsMB(u.DuckDB))
			if hf, err := os.Create(fmt.Sprintf("%s.%03d.heap", path, n)); err == nil {
				pprof.Lookup("heap").WriteTo(hf, 0)
				hf.Close()
			}
			n++
		})
}

// tickLog writes header and then, every every until stop (and once more
// at stop), a line written by line to a file made at path.
func tickLog(path string, every time.Duration, header string, line func(f io.Writer, elapsed time.Duration)) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("memlog: %w", err)
	}
	fmt.Fprintln(f, header)
	done := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				line(f, time.Since(start))
				return
			case <-t.C:
				line(f, time.Since(start))
			}
		}
	})
	return sync.OnceFunc(func() { close(done); wg.Wait(); f.Close() }), nil
}

// tagsMB is an engine's memory by tag as sorted tag=MiB.
func tagsMB(by map[string]int64) []string {
	tags := make([]string, 0, len(by))
	for t, b := range by {
		tags = append(tags, fmt.Sprintf("%s=%.0f", t, mb(b)))
	}
	sort.Strings(tags)
	return tags
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// processColumns is the memlogs' "rss_mb anon_mb file_mb lazyfree_mb
// go_live_mb go_goal_mb go_mapped_mb go_released_mb": the resident set by
// kind (/proc/self/smaps_rollup: anonymous, file-backed, freed but not yet
// taken back) and Go's heap (live, the collector's goal, what the runtime
// holds mapped and what it gave back to the kernel), in MiB.
func processColumns() string {
	samples := []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/heap/goal:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
	}
	metrics.Read(samples)
	var g [4]int64
	for i, s := range samples {
		if s.Value.Kind() == metrics.KindUint64 {
			g[i] = int64(s.Value.Uint64())
		}
	}
	sm := procKB("/proc/self/smaps_rollup")
	return fmt.Sprintf("%.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f",
		mb(sm["Rss"]), mb(sm["Anonymous"]), mb(sm["Rss"]-sm["Anonymous"]), mb(sm["LazyFree"]), mb(g[0]), mb(g[1]), mb(g[2]), mb(g[3]))
}

// sumBytes is the total of an engine's memory by tag.
func sumBytes(by map[string]int64) int64 {
	var total int64
	for _, b := range by {
		total += b
	}
	return total
}

// procKB is a /proc file's "Name: N kB" lines as bytes by name (empty
// where /proc is not): VmRSS of /proc/self/status, Anonymous of
// /proc/self/smaps_rollup.
func procKB(path string) map[string]int64 {
	m := map[string]int64{}
	p, err := os.ReadFile(path)
	if err != nil {
		return m
	}
	sc := bufio.NewScanner(bytes.NewReader(p))
	for sc.Scan() {
		name, v, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok {
			continue
		}
		if fs := bytes.Fields(v); len(fs) == 2 && string(fs[1]) == "kB" {
			kb, _ := strconv.ParseInt(string(fs[0]), 10, 64)
			m[string(name)] = kb << 10
		}
	}
	return m
}
