package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
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
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("memlog: %w", err)
	}
	fmt.Fprintln(f, "elapsed_s rss_mb go_heap_inuse_mb go_sys_mb duckdb_mb keyfilter_mb bucketindex_mb buckets blockcache_mb tail_mb partitions duckdb_tags")
	done := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	n := 0
	write := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		var u duckdb.MemoryUse
		if st != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			u, _ = st.MemoryUse(ctx) // a closed store: its parts stay 0
			cancel()
		}
		tags := make([]string, 0, len(u.DuckDB))
		for t, b := range u.DuckDB {
			tags = append(tags, fmt.Sprintf("%s=%.0f", t, mb(b)))
		}
		sort.Strings(tags)
		fmt.Fprintf(f, "%.0f %.0f %.0f %.0f %.0f %.1f %.1f %d %.1f %.1f %d %v\n",
			time.Since(start).Seconds(), mb(rssBytes()), mb(int64(ms.HeapInuse)), mb(int64(ms.Sys)),
			mb(u.DuckDBTotal), mb(u.KeyFilter), mb(u.BucketIndex), u.Buckets, mb(u.BlockCache), mb(u.Tail), u.Partitions, tags)
		if hf, err := os.Create(fmt.Sprintf("%s.%03d.heap", path, n)); err == nil {
			pprof.Lookup("heap").WriteTo(hf, 0)
			hf.Close()
		}
		n++
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(memLogEvery)
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
	return func() { close(done); wg.Wait(); f.Close() }, nil
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// rssBytes is the process's resident set (VmRSS), 0 where /proc is not.
func rssBytes() int64 {
	p, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(p))
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmRSS:")); ok {
			fs := bytes.Fields(v)
			if len(fs) > 0 {
				kb, _ := strconv.ParseInt(string(fs[0]), 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
