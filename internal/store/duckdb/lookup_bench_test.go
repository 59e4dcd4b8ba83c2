package duckdb_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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

// loadStore fills a store with n events spread over 90 days, newest last,
// for one account and region, appended in batches of 10,000.
func loadStore(b *testing.B, n int) (*duckdb.Store, []audit.Record) {
	b.Helper()
	dir := b.TempDir()
	if d := os.Getenv("CAIRN_BENCH_DIR"); d != "" {
		dir = d
	}
	st, err := duckdb.Open(filepath.Join(dir, "events.duckdb"), duckdb.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	end := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	span := 90 * 24 * time.Hour
	g := storetest.NewGen(42, end.Add(-span))
	var sample []audit.Record
	start := time.Now()
	const batch = 10000
	recs := make([]audit.Record, 0, batch)
	for i := 0; i < n; i++ {
		t := end.Add(-span + time.Duration(int64(span)/int64(n)*int64(i)))
		r := g.Record(storetest.Spec{Time: t})
		if i%(n/100+1) == 0 {
			sample = append(sample, r)
		}
		recs = append(recs, r)
		if len(recs) == batch || i == n-1 {
			if _, err := st.Append(context.Background(), recs); err != nil {
				b.Fatal(err)
			}
			recs = recs[:0]
		}
	}
	el := time.Since(start)
	b.Logf("loaded %d events in %v (%.0f events/s, generation included)", n, el.Round(time.Millisecond), float64(n)/el.Seconds())
	return st, sample
}

// BenchmarkLookup measures Store.Lookup latency for the lookups
// LookupEvents makes, reporting p50 and p99.
func BenchmarkLookup(b *testing.B) {
	n := benchEvents()
	st, sample := loadStore(b, n)
	mid := sample[len(sample)/2]
	rare := sample[len(sample)/3]
	base := audit.Query{Account: "111111111111", Region: "us-east-1", Category: audit.CategoryManagement, Limit: 50}
	with := func(attrs ...audit.Attribute) audit.Query { q := base; q.Attributes = attrs; return q }
	deep := base
	deep.After = &audit.Cursor{Time: mid.Time, EventID: mid.EventID}
	cases := []struct {
		name string
		q    audit.Query
	}{
		{"TimePageNewest", base},
		{"TimePageDeep", deep},
		{"EventIdRare", with(audit.Attribute{Key: audit.AttrEventID, Value: rare.EventID})},
		{"EventNameCommon", with(audit.Attribute{Key: audit.AttrEventName, Value: "GetObject"})},
		{"AccessKeyId", with(audit.Attribute{Key: audit.AttrAccessKeyID, Value: rare.AccessKeyID})},
		{"ResourceName", with(audit.Attribute{Key: audit.AttrResourceName, Value: rare.Resources[0].Name})},
		{"ReadOnlyFalseAndUser", with(audit.Attribute{Key: audit.AttrReadOnly, Value: "false"}, audit.Attribute{Key: audit.AttrUsername, Value: "bob"})},
		{"NoMatch", with(audit.Attribute{Key: audit.AttrEventName, Value: "NoSuchEvent"})},
	}
	for _, c := range cases {
		b.Run(fmt.Sprintf("%s/events=%d", c.name, n), func(b *testing.B) {
			var lat []time.Duration
			for b.Loop() {
				t0 := time.Now()
				if _, err := st.Lookup(context.Background(), c.q); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

// BenchmarkAppend measures appending batches of 5,000 new records.
func BenchmarkAppend(b *testing.B) {
	st, err := duckdb.Open(filepath.Join(b.TempDir(), "events.duckdb"), duckdb.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	g := storetest.NewGen(7, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	var bytes int64
	for b.Loop() {
		b.StopTimer()
		recs := g.Records(5000)
		for _, r := range recs {
			bytes += int64(len(r.Raw))
		}
		b.StartTimer()
		if _, err := st.Append(context.Background(), recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*5000)/b.Elapsed().Seconds(), "records/s")
	b.SetBytes(bytes / int64(b.N))
}
