package postgres

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/pgtest"
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

const (
	benchAccount = "123456789012"
	benchRegion  = "us-east-1"
	benchBatch   = 10000
)

// benchSet is a loaded store and the values its lookups ask for.
type benchSet struct {
	st     *Store
	sample []audit.Record // about 100 records spread over the time range
	events int            // records in the store (fewer than asked for: CAIRN_BENCH_LOADED)
}

// needles are three records with values nothing else has, at 10%, 50% and
// 90% of the time range: the worst case for a lookup, which must look
// through all of history to be sure no fourth exists.
var needle = storetest.Spec{EventName: "NeedleEvent", AccessKeyID: "AKIANEEDLE0000000001", Bucket: "needle-bucket"}

// loadStore fills a fresh database (pgtest) with n real-shaped events of
// one account and region over 90 days, oldest first, in batches of
// 10,000, runs ANALYZE, and reports the load rate and the bytes on disk
// per event (tables and indexes: events, its postings or resources, and
// event_keys). CAIRN_BENCH_POSTGRES names an existing
// database to use instead (kept; loaded only when empty, or the rest of
// it when a load into it was stopped).
func loadStore(b *testing.B, n int) benchSet {
	b.Helper()
	dsn := os.Getenv("CAIRN_BENCH_POSTGRES")
	if dsn == "" {
		dsn = pgtest.Database(b)
	}
	st, err := Open(context.Background(), dsn, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	// A kept database resumes a load that was stopped: each of the
	// loader's batches is one append (one event_batches row), made in
	// the same order from the same seeds, so the first done ones are
	// made again (for the sample) but not appended.
	var done int
	if err := st.pool.QueryRow(context.Background(), `SELECT count(*) FROM event_batches`).Scan(&done); err != nil {
		b.Fatal(err)
	}
	loaded := done > 0
	end := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	span := 90 * 24 * time.Hour
	start := end.Add(-span)
	shapes := storetest.NewShapes(b, 42)
	gen := storetest.NewGen(43, start)
	var sample []audit.Record
	var appendTime time.Duration
	appended := 0 // by this run (a resumed load: the rest)
	var rawBytes int64
	// CAIRN_BENCH_LOADED=1 measures a kept database as far as it is
	// loaded, without loading the rest: the first batches of an n-event
	// load (the oldest part of its 90 days).
	partial := os.Getenv("CAIRN_BENCH_LOADED") == "1"
	events := 0
	for i := 0; i < n; i += benchBatch {
		if partial && i/benchBatch >= done {
			b.Logf("PARTIAL: %d of the load's %d batches, %d events", done, (n+benchBatch-1)/benchBatch, events)
			break
		}
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
		events += len(recs)
		if i/benchBatch < done {
			continue
		}
		if loaded && i/benchBatch == done {
			b.Logf("resuming the load at event %d (%d batches loaded)", i, done)
		}
		t0 := time.Now()
		if _, err := st.Append(context.Background(), recs); err != nil {
			b.Fatal(err)
		}
		appendTime += time.Since(t0)
		appended += len(recs)
	}
	if _, err := st.pool.Exec(context.Background(), "ANALYZE"); err != nil {
		b.Fatal(err)
	}
	var disk int64
	if err := st.pool.QueryRow(context.Background(), `SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) + pg_total_relation_size('event_keys')
		FROM pg_inherits WHERE inhparent IN (SELECT oid FROM pg_class WHERE relname IN ('events', 'event_postings', 'event_resources'))`).Scan(&disk); err != nil {
		b.Fatal(err)
	}
	b.Logf("LOAD events=%d appended=%d append_rate=%.0f/s disk_bytes_per_event=%.0f raw_bytes_per_event=%.0f",
		events, appended, float64(appended)/appendTime.Seconds(), float64(disk)/float64(events), float64(rawBytes)/float64(events))
	return benchSet{st: st, sample: sample, events: events}
}

// BenchmarkLookup measures Store.Lookup on PostgreSQL for the lookups
// LookupEvents makes (storetest.BenchLookups: the embedded store's cases).
func BenchmarkLookup(b *testing.B) {
	set := loadStore(b, benchEvents())
	n := set.events
	storetest.BenchLookups(b, set.st, n, set.sample, needle, benchAccount, benchRegion)
	// PostgreSQL's own case: a posted value with a second condition that
	// refuses almost all of its records. The EventSource (1% of the
	// records or more) whose records are the least often ReadOnly=false
	// in the shapes' mix (kms.amazonaws.com: 6% of the records, 0.2% of
	// them writes), and its writes.
	src := rareWriteSource(b)
	q := audit.Query{Account: benchAccount, Region: benchRegion, Category: audit.CategoryManagement, Limit: 50,
		Attributes: []audit.Attribute{{Key: audit.AttrReadOnly, Value: "false"}, {Key: audit.AttrEventSource, Value: src}}}
	b.Run("ReadOnlyFalseAndRareWriteSource/events="+strconv.Itoa(n), func(b *testing.B) {
		b.Logf("EventSource %s", src)
		benchOne(b, set.st, q)
	})
}

// rareWriteSource is the EventSource of at least 1% of the benchmark's
// records whose records are the least often ReadOnly=false (but some
// are), in 50,000 records of the loaded store's shapes.
func rareWriteSource(b *testing.B) string {
	recs := storetest.NewShapes(b, 42).Records(50000, time.Unix(0, 0), time.Unix(1000, 0), benchAccount, benchRegion)
	type count struct{ all, writes int }
	by := map[string]*count{}
	for _, r := range recs {
		if r.Category != audit.CategoryManagement {
			continue
		}
		c := by[r.EventSource]
		if c == nil {
			c = &count{}
			by[r.EventSource] = c
		}
		c.all++
		if r.ReadOnly == audit.False {
			c.writes++
		}
	}
	best, share := "", 2.0
	for src, c := range by {
		if f := float64(c.writes) / float64(c.all); c.all >= len(recs)/100 && c.writes > 0 && (f < share || f == share && src < best) {
			best, share = src, f
		}
	}
	if best == "" {
		b.Fatal("no EventSource with rare writes in the shapes")
	}
	return best
}

// benchOne measures q as storetest.BenchLookups measures its cases:
// warm, then p50 and p99 latency and the process's CPU a lookup.
func benchOne(b *testing.B, st *Store, q audit.Query) {
	if _, err := st.Lookup(context.Background(), q); err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	cpu0 := processCPU()
	for b.Loop() {
		t0 := time.Now()
		if _, err := st.Lookup(context.Background(), q); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/1000/float64(len(lat)), "cpu-ms/op")
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkAppend measures appending batches of 5,000 new real-shaped
// records to a store that grows as it runs.
func BenchmarkAppend(b *testing.B) {
	st, err := Open(context.Background(), pgtest.Database(b), Options{})
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

// BenchmarkAppendNodes measures ingest into one database from several
// nodes at once: CAIRN_BENCH_NODES stores (default 1), each with its own
// connection pool as a cairn serve node has, append batches of 10,000
// real-shaped records one at a time (as a node's ingest pipeline does),
// together CAIRN_BENCH_EVENTS records (default 20,000). The records are
// made before the clock starts; records/s is the total over all nodes.
// CAIRN_BENCH_POSTGRES names a database to use instead of a fresh one.
func BenchmarkAppendNodes(b *testing.B) {
	nodes := 1
	if n, err := strconv.Atoi(os.Getenv("CAIRN_BENCH_NODES")); err == nil && n > 0 {
		nodes = n
	}
	n := benchEvents()
	dsn := os.Getenv("CAIRN_BENCH_POSTGRES")
	if dsn == "" {
		dsn = pgtest.Database(b)
	}
	stores := make([]*Store, nodes)
	for i := range stores {
		st, err := Open(context.Background(), dsn, Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		stores[i] = st
	}
	// CAIRN_BENCH_DROP_INDEXES (names, comma-separated) drops those
	// indexes first: what each costs an append (docs/scale.md).
	for _, name := range strings.Split(os.Getenv("CAIRN_BENCH_DROP_INDEXES"), ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		if _, err := stores[0].pool.Exec(context.Background(), "DROP INDEX "+pgx.Identifier{name}.Sanitize()); err != nil {
			b.Fatal(err)
		}
	}
	shapes := storetest.NewShapes(b, 11)
	t := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for b.Loop() {
		b.StopTimer()
		// Each node's batches: node i takes every nodes-th batch.
		work := make([][][]audit.Record, nodes)
		for i := 0; i < n; i += benchBatch {
			m := min(benchBatch, n-i)
			recs := shapes.Records(m, t, t.Add(time.Hour), benchAccount, benchRegion)
			t = t.Add(time.Hour)
			k := (i / benchBatch) % nodes
			work[k] = append(work[k], recs)
		}
		var walBefore string
		var diskBefore int64
		if err := stores[0].pool.QueryRow(context.Background(), `SELECT pg_current_wal_insert_lsn()::text, pg_database_size(current_database())`).Scan(&walBefore, &diskBefore); err != nil {
			b.Fatal(err)
		}
		serverBefore := backendCPU(b, stores[0])
		clientBefore := processCPU()
		b.StartTimer()
		start := time.Now()
		errs := make(chan error, nodes)
		for i, st := range stores {
			go func() {
				for _, recs := range work[i] {
					if _, err := st.Append(context.Background(), recs); err != nil {
						errs <- err
						return
					}
				}
				errs <- nil
			}()
		}
		for range stores {
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
		}
		elapsed := time.Since(start)
		b.StopTimer()
		client := processCPU() - clientBefore
		var server time.Duration
		for pid, t := range backendCPU(b, stores[0]) {
			server += t - serverBefore[pid]
		}
		// WAL written during the appends (every database's: the server
		// is shared), per record.
		// and what the database grew by (tables, TOAST, indexes).
		var wal float64
		var disk int64
		if err := stores[0].pool.QueryRow(context.Background(),
			`SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1::pg_lsn), pg_database_size(current_database())`, walBefore).Scan(&wal, &disk); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(n)/elapsed.Seconds(), "records/s")
		b.Logf("INGEST nodes=%d events=%d records_per_s=%.0f wal_bytes_per_record=%.0f disk_bytes_per_record=%.0f server_cpu_us_per_record=%.1f client_cpu_us_per_record=%.1f",
			nodes, n, float64(n)/elapsed.Seconds(), wal/float64(n), float64(disk-diskBefore)/float64(n),
			float64(server.Microseconds())/float64(n), float64(client.Microseconds())/float64(n))
		b.StartTimer()
	}
}

// backendCPU returns the CPU time (user and system) used so far by each
// backend of st's database, by pid, read from /proc: the server's side of
// an append, which a loaded machine stretches in wall time but not in CPU.
// Empty when the server is not on this machine (or /proc is not readable).
func backendCPU(b *testing.B, st *Store) map[int32]time.Duration {
	b.Helper()
	rows, err := st.pool.Query(context.Background(), `SELECT pid FROM pg_stat_activity WHERE datname = current_database()`)
	if err != nil {
		b.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		b.Fatal(err)
	}
	out := map[int32]time.Duration{}
	for _, pid := range pids {
		if t, ok := procCPU("/proc/" + strconv.Itoa(int(pid)) + "/stat"); ok {
			out[pid] = t
		}
	}
	return out
}

// processCPU is this process's CPU time so far (the client's side).
func processCPU() time.Duration {
	t, _ := procCPU("/proc/self/stat")
	return t
}

// procCPU reads utime+stime from a /proc/PID/stat file (in clock ticks of
// 10 ms, Linux's USER_HZ).
func procCPU(path string) (time.Duration, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	// The command name (field 2) may hold spaces: count from its ')'.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, true
}
