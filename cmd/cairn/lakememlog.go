package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os"
	"runtime/metrics"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cairn-audit/cairn/internal/lake"
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
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("memlog: %w", err)
	}
	fmt.Fprintln(f, "elapsed_s rss_mb anon_mb file_mb lazyfree_mb go_live_mb go_goal_mb go_mapped_mb go_released_mb duckdb_mb duckdb_temp_mb seen_mb seen_keys duckdb_limit duckdb_tags")
	samples := []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/heap/goal:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	write := func() {
		metrics.Read(samples)
		var g [4]int64
		for i, s := range samples {
			if s.Value.Kind() == metrics.KindUint64 {
				g[i] = int64(s.Value.Uint64())
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		u := sink.MemoryUse(ctx)
		cancel()
		var total int64
		tags := make([]string, 0, len(u.Engine))
		for t, b := range u.Engine {
			total += b
			tags = append(tags, fmt.Sprintf("%s=%.0f", t, mb(b)))
		}
		sort.Strings(tags)
		sm := smapsRollup()
		fmt.Fprintf(f, "%.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %d %s %v\n",
			time.Since(start).Seconds(), mb(sm["Rss"]), mb(sm["Anonymous"]), mb(sm["Rss"]-sm["Anonymous"]), mb(sm["LazyFree"]),
			mb(g[0]), mb(g[1]), mb(g[2]), mb(g[3]), mb(total), mb(u.EngineTemp), mb(u.Seen), u.SeenKeys, strings.ReplaceAll(cmp.Or(u.EngineLimit, "-"), " ", ""), tags)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(lakeMemLogEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				write()
				return
			case <-t.C:
				write()
			}
		}
	}()
	return sync.OnceFunc(func() { close(done); wg.Wait(); f.Close() }), nil
}

// smapsRollup is /proc/self/smaps_rollup's sizes by name, in bytes (empty
// where /proc is not).
func smapsRollup() map[string]int64 {
	m := map[string]int64{}
	p, err := os.ReadFile("/proc/self/smaps_rollup")
	if err != nil {
		return m
	}
	sc := bufio.NewScanner(bytes.NewReader(p))
	for sc.Scan() {
		name, v, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok {
			continue
		}
		fs := bytes.Fields(v)
		if len(fs) == 2 && string(fs[1]) == "kB" {
			kb, _ := strconv.ParseInt(string(fs[0]), 10, 64)
			m[string(name)] = kb << 10
		}
	}
	return m
}
