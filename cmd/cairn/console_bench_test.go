package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/store/duckdb"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

// BenchmarkConsoleEventsPage measures Event History's first page end to
// end: a signed-in browser's GET /console/events against cairn serve over
// a DuckDB store of CAIRN_BENCH_EVENTS real-shaped events (default 20,000,
// for CI's -benchtime=1x; docs/benchmarks.md has 1M), one account and
// region over the last 90 days. Each sub-benchmark reports p50 and p99
// wall time of the whole request: the console's LookupEvents through the
// API server (its record included), the store's lookup, and the template.
// CAIRN_BENCH_DATA_DIR keeps the data dir there and reuses it when it
// already holds a store (loading 10M events takes many minutes).
func BenchmarkConsoleEventsPage(b *testing.B) {
	n := 20000
	if v, err := strconv.Atoi(os.Getenv("CAIRN_BENCH_EVENTS")); err == nil && v > 0 {
		n = v
	}
	dataDir := os.Getenv("CAIRN_BENCH_DATA_DIR")
	if dataDir == "" {
		dataDir = b.TempDir()
	}
	_, statErr := os.Stat(filepath.Join(dataDir, storeFile))
	reuse := statErr == nil
	st, err := duckdb.Open(filepath.Join(dataDir, storeFile), duckdb.Options{})
	if err != nil {
		b.Fatal(err)
	}
	shapes := storetest.NewShapes(b, 42)
	end := time.Now().UTC().Add(-time.Hour)
	span := 89 * 24 * time.Hour
	start := end.Add(-span)
	const batch = 10000
	t0 := time.Now()
	var names []string
	for i := 0; i < n; i += batch {
		m := min(batch, n-i)
		first := start.Add(time.Duration(int64(span) / int64(n) * int64(i)))
		last := start.Add(time.Duration(int64(span) / int64(n) * int64(i+m)))
		recs := shapes.Records(m, first, last, "111111111111", "us-east-1")
		if i == 0 {
			for _, r := range recs[:100] {
				if !slices.Contains(names, r.EventName) {
					names = append(names, r.EventName)
				}
			}
		}
		if reuse { // the same seed: the first batch names the same calls
			break
		}
		if _, err := st.Append(context.Background(), recs); err != nil {
			b.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	if reuse {
		b.Logf("reused the store in %s", dataDir)
	} else {
		b.Logf("loaded %d events in %v (load average %s)", n, time.Since(t0).Round(time.Second), loadavg())
	}
	ts := startServer(b, fmt.Sprintf(twoAccounts, 0), dataDir)
	c := signInConsole(b, ts, "AKIAALICE00000000001", "alice-secret-key").c
	for _, q := range []struct{ name, query string }{
		{"no-filter", ""},
		{"event-name", "&k=EventName&v=" + url.QueryEscape(names[0])},
		{"read-only-false", "&k=ReadOnly&v=false"},
		{"rare-user", "&k=Username&v=nobody-has-this-name"},
	} {
		b.Run(q.name, func(b *testing.B) {
			for range 3 { // warm: the first lookups after a start meet its catch-up
				if resp, err := c.Get(ts.endpoint + "/console/events?region=us-east-1" + q.query); err == nil {
					resp.Body.Close()
				}
			}
			var lat []time.Duration
			for b.Loop() {
				t := time.Now()
				resp, err := c.Get(ts.endpoint + "/console/events?region=us-east-1" + q.query)
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("events = %d", resp.StatusCode)
				}
				lat = append(lat, time.Since(t))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
	b.Logf("load average after: %s", loadavg())
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	if len(b) > 14 {
		b = b[:14]
	}
	return string(b)
}
