package duckdb_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/duckdb"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

// benchEvents is the store size of the lookup benchmarks: CAIRN_BENCH_EVENTS
// (bench/lookup.sh sets 1M and 10M), else a size that runs quickly in CI.
func benchEvents() int {
	if n, err := strconv.Atoi(os.Getenv("CAIRN_BENCH_EVENTS")); err == nil && n > 0 {
		return n
	}
	return 20000
}

// benchRowGroup is CAIRN_BENCH_ROW_GROUP, for comparing row group sizes
// (0: the store's default).
func benchRowGroup() int {
	n, _ := strconv.Atoi(os.Getenv("CAIRN_BENCH_ROW_GROUP"))
	return n
}

const (
	benchAccount = "123456789012"
	benchRegion  = "us-east-1"
	benchBatch   = 10000
)

// benchSet is a loaded store and the values its lookups ask for.
type benchSet struct {
	st     *duckdb.Store
	sample []audit.Record // about 100 records spread over the time range
}

// needles are three records with values nothing else has, at 10%, 50% and
// 90% of the time range: the worst case for a lookup, which must look
// through all of history to be sure no fourth exists.
var needle = storetest.Spec{EventName: "NeedleEvent", AccessKeyID: "AKIANEEDLE0000000001", Bucket: "needle-bucket"}

// loadStore fills a store with n real-shaped events of one account and
// region over 90 days, oldest first, in batches of 10,000, closes it,
// reports the load rate and the bytes on disk per event, and opens it
// again. With CAIRN_BENCH_KEEP=DIR the store is kept in DIR/events-N.duckdb
// and reused by the next run (the records are generated again, not
// appended), so lookup experiments do not pay for loading each time.
func loadStore(b *testing.B, n int) benchSet {
	b.Helper()
	dir := b.TempDir()
	reuse := false
	if keep := os.Getenv("CAIRN_BENCH_KEEP"); keep != "" {
		dir = filepath.Join(keep, fmt.Sprintf("events-%d-rg%d", n, benchRowGroup()))
		_, err := os.Stat(filepath.Join(dir, "complete"))
		reuse = err == nil
		if !reuse {
			if err := os.RemoveAll(dir); err != nil {
				b.Fatal(err)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				b.Fatal(err)
			}
		}
	}
	path := filepath.Join(dir, "events.duckdb")
	st, err := duckdb.Open(path, duckdb.Options{RowGroupSize: benchRowGroup()})
	if err != nil {
		b.Fatal(err)
	}
	end := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	span := 90 * 24 * time.Hour
	start := end.Add(-span)
	shapes := storetest.NewShapes(b, 42)
	gen := storetest.NewGen(43, start)
	var sample []audit.Record
	var appendTime time.Duration
	var rawBytes int64
	for i := 0; i < n; i += benchBatch {
		m := min(benchBatch, n-i)
		first := start.Add(time.Duration(int64(span) / int64(n) * int64(i)))
		last := start.Add(time.Duration(int64(span) / int64(n) * int64(i+m)))
		recs := shapes.Records(m, first, last, benchAccount, benchRegion)
		for _, frac := range []int{10, 50, 90} {
			if at := n * frac / 100; at >= i && at < i+m {
				s := needle
				s.Account, s.Region, s.Time = benchAccount, benchRegion, recs[at-i].Time
				recs = append(recs, gen.Record(s))
			}
		}
		if i%(n/100+1) < m {
			sample = append(sample, recs[len(recs)/2])
			// and one with a resource, for ResourceName lookups
			for _, r := range recs[len(recs)/2:] {
				if len(r.Resources) > 0 && r.Resources[0].Name != "" && r.EventName != needle.EventName {
					sample = append(sample, r)
					break
				}
			}
		}
		for _, r := range recs {
			rawBytes += int64(len(r.Raw))
		}
		if reuse {
			continue
		}
		t0 := time.Now()
		if _, err := st.Append(context.Background(), recs); err != nil {
			b.Fatal(err)
		}
		appendTime += time.Since(t0)
	}
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	if !reuse && os.Getenv("CAIRN_BENCH_KEEP") != "" {
		if err := os.WriteFile(filepath.Join(dir, "complete"), nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	var disk int64
	for _, f := range []string{path, path + ".wal"} {
		if fi, err := os.Stat(f); err == nil {
			disk += fi.Size()
		}
	}
	t0 := time.Now()
	threads, _ := strconv.Atoi(os.Getenv("CAIRN_BENCH_THREADS"))
	if st, err = duckdb.Open(path, duckdb.Options{Threads: threads, RowGroupSize: benchRowGroup()}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	b.Logf("LOAD events=%d append_rate=%.0f/s disk_bytes_per_event=%.0f raw_bytes_per_event=%.0f reopen=%v",
		n, float64(n)/appendTime.Seconds(), float64(disk)/float64(n), float64(rawBytes)/float64(n), time.Since(t0).Round(time.Millisecond))
	return benchSet{st: st, sample: sample}
}

// BenchmarkLookup measures Store.Lookup for the lookups LookupEvents makes,
// reporting p50 and p99 latency.
func BenchmarkLookup(b *testing.B) {
	n := benchEvents()
	set := loadStore(b, n)
	storetest.BenchLookups(b, set.st, n, set.sample, needle, benchAccount, benchRegion)
}

// BenchmarkAppend measures appending batches of 5,000 new real-shaped
// records to a store that grows as it runs.
func BenchmarkAppend(b *testing.B) {
	st, err := duckdb.Open(filepath.Join(b.TempDir(), "events.duckdb"), duckdb.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	shapes := storetest.NewShapes(b, 7)
	t := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	const batch = 5000
	var bytes int64
	for b.Loop() {
		b.StopTimer()
		recs := shapes.Records(batch, t, t.Add(time.Hour), benchAccount, benchRegion)
		t = t.Add(time.Hour)
		for _, r := range recs {
			bytes += int64(len(r.Raw))
		}
		b.StartTimer()
		if _, err := st.Append(context.Background(), recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "records/s")
	b.SetBytes(bytes / int64(b.N))
}

// BenchmarkAppendBatches measures live ingest's shape of append (issue 15):
// batches of 100 to 131,072 (a DuckDB row group and a bit) new records of
// the current hour, as the ingest pipeline's group commits hand them over,
// into a store that grows as it runs. It reports records/s and the process's CPU time per record, which
// tells whether an append's cost is per transaction or per row.
func BenchmarkAppendBatches(b *testing.B) {
	for _, batch := range []int{100, 400, 2000, 10000, 32768, 131072} {
		b.Run(strconv.Itoa(batch), func(b *testing.B) {
			st, err := duckdb.Open(filepath.Join(b.TempDir(), "events.duckdb"), duckdb.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			shapes := storetest.NewShapes(b, 7)
			t := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
			var cpu time.Duration
			for b.Loop() {
				b.StopTimer()
				recs := shapes.Records(batch, t, t.Add(time.Second), benchAccount, benchRegion)
				t = t.Add(time.Second)
				c0 := processCPU()
				b.StartTimer()
				if _, err := st.Append(context.Background(), recs); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				cpu += processCPU() - c0
				b.StartTimer()
			}
			n := float64(b.N * batch)
			b.ReportMetric(n/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(cpu.Microseconds())/n, "cpu-us/record")
		})
	}
}
