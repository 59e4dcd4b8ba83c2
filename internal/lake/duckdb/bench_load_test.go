package duckdb

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/lake/engine"
)

// BenchmarkLoad inserts CAIRN_LAKE_LOAD_N real records (default 262,144,
// the real ones repeated) in transactions of 131,072 (lake.LoadBatch) into
// a database file: the engine's share of a Lake load, without the
// importer's reading of the files. CAIRN_LAKE_LOAD_THREADS sets DuckDB's
// threads (lake.threads; default 1); CAIRN_LAKE_LOAD_APPENDERS the
// Inserts at once (default 1), each its own transaction (a load's
// concurrent Appends, lake.LoadAppenders, take turns in one: Load). A
// batch of at most journalRows (a small CAIRN_LAKE_LOAD_N, or the last
// batch) goes through the journal, as PutAuditEvents' do: its rate is the
// journal's, and it is moved into the table before the rows are counted.
func BenchmarkLoad(b *testing.B) {
	n := 262144
	if v, err := strconv.Atoi(os.Getenv("CAIRN_LAKE_LOAD_N")); err == nil && v > 0 {
		n = v
	}
	threads, _ := strconv.Atoi(os.Getenv("CAIRN_LAKE_LOAD_THREADS")) // lake.threads (0: the default, 1)
	appenders, _ := strconv.Atoi(os.Getenv("CAIRN_LAKE_LOAD_APPENDERS"))
	appenders = max(appenders, 1)
	real := audittest.RealRecords(b)
	rows := make([]engine.Row, n)
	for i := range rows {
		rows[i] = engine.Row{Store: "s", Raw: real[i%len(real)].Raw}
	}
	ctx := context.Background()
	for b.Loop() {
		d, err := Open(filepath.Join(b.TempDir(), "lake.duckdb"), Options{Threads: threads})
		if err != nil {
			b.Fatal(err)
		}
		start, cpu0, flt0 := time.Now(), cpuTime(), minorFaults()
		batches := make(chan []engine.Row)
		var wg sync.WaitGroup
		for range appenders {
			wg.Go(func() {
				for r := range batches {
					if err := d.Insert(ctx, r, 0); err != nil {
						b.Error(err)
					}
				}
			})
		}
		for i := 0; i < n; i += 131072 {
			batches <- rows[i:min(n, i+131072)]
		}
		close(batches)
		wg.Wait()
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
		b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(n), "cpu-µs/event")
		b.ReportMetric(float64(minorFaults()-flt0)/float64(n), "page-faults/event")
		b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MB")
		// A batch of at most journalRows (CAIRN_LAKE_LOAD_N small, or the
		// last one) went through the journal: into the table first.
		if err := d.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		var got int
		if err := d.db.QueryRow(`SELECT count(*) FROM events`).Scan(&got); err != nil || got != n {
			b.Fatalf("events: %d, %v; want %d", got, err, n)
		}
		d.Close()
		// The database file once closed (checkpointed): Lake's size.
		if st, err := os.Stat(d.path); err == nil {
			b.ReportMetric(float64(st.Size())/(1<<20), "file-MB")
		}
	}
}

// cpuTime is the CPU time the process used (user + system, all threads).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// minorFaults is the number of page faults the process took that needed
// no IO (fresh memory: each costs the kernel a cleared page).
func minorFaults() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Minflt
}

// peakRSS is the largest resident set the process has had, in bytes (the
// records the benchmark holds included).
func peakRSS() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Maxrss << 10 // KB on Linux
}

// BenchmarkInsertCall times Insert calls of 1 and of 100 custom events
// (PutAuditEvents' records) into a database file.
func BenchmarkInsertCall(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			d, err := Open(filepath.Join(b.TempDir(), "lake.duckdb"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			rows := make([]engine.Row, n)
			for i := range rows {
				rows[i] = engine.Row{Store: "s", Raw: []byte(`{"eventVersion":"1.0","eventCategory":"ActivityAuditLog","eventType":"ActivityLog","eventID":"e` + strconv.Itoa(i) +
					`","eventTime":"2026-01-02T03:04:05Z","awsRegion":"us-east-1","recipientAccountId":"111111111111","metadata":{"channelARN":"arn:aws:cloudtrail:us-east-1:111111111111:channel/c","ingestionTime":"2026-01-02T03:04:05Z"},` +
					`"eventData":{"version":"1.0","userIdentity":{"type":"CustomUser","principalId":"alice","details":{"team":"blue"}},"userAgent":"app/1","eventSource":"myapp.example.com","eventName":"Op","eventTime":"2026-01-02T03:04:05Z","UID":"u","requestParameters":{"doc":"a","n":2},"sourceIPAddress":"10.0.0.1","recipientAccountId":"111111111111"}}`)}
			}
			ctx := context.Background()
			cpu0 := cpuTime()
			for b.Loop() {
				if err := d.Insert(ctx, rows, 0); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/call")
		})
	}
}
