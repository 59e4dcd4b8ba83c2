package lake

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/lake/duckdb"
	"github.com/cairn-audit/cairn/internal/lake/engine"
	"github.com/cairn-audit/cairn/internal/lake/postgres"
	"github.com/cairn-audit/cairn/internal/pgtest"
)

// BenchmarkEngines times Lake's group-bys (benchQueries) on both engines
// over the same events: the real records repeated with fresh eventIDs,
// CAIRN_LAKE_BENCH_N of them (default 100,000).
//
// The data is kept between runs so that the measurement runs apart from
// the load: CAIRN_LAKE_BENCH_ENGINES_DIR names a folder for lake.duckdb
// and CAIRN_LAKE_BENCH_ENGINES_PG a PostgreSQL database (both reused when
// they hold the events; without them, a temporary folder and a database of
// pgtest). CAIRN_LAKE_BENCH_LOAD_ONLY=1 loads and stops.
func BenchmarkEngines(b *testing.B) {
	ctx := context.Background()
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("CAIRN_LAKE_BENCH_N")); err == nil && v > 0 {
		n = v
	}
	dir := os.Getenv("CAIRN_LAKE_BENCH_ENGINES_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	dsn := os.Getenv("CAIRN_LAKE_BENCH_ENGINES_PG")
	if dsn == "" {
		dsn = pgtest.Database(b)
	}
	const id = "eeeeeeee-0000-4000-8000-00000000000e"
	duck, err := duckdb.Open(filepath.Join(dir, DBFile), duckdb.Options{})
	if err != nil {
		b.Fatal(err)
	}
	pg, err := postgres.Open(ctx, dsn, postgres.Options{})
	if err != nil {
		b.Fatal(err)
	}
	engs := map[string]engine.Engine{"duckdb": duck, "postgres": pg}
	for _, kind := range engines {
		if err := os.MkdirAll(filepath.Join(dir, kind), 0o700); err != nil {
			b.Fatal(err)
		}
		l, err := Open(filepath.Join(dir, kind), Options{Engine: engs[kind], QueryTimeout: time.Hour, MaxResultBytes: 1 << 30})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		l.stores[id] = &EventDataStore{ID: id, Account: acctA, Name: "bench", Region: "us-east-1", Status: StatusEnabled, RetentionPeriod: 3653}
		res, err := l.Query(ctx, acctA, `SELECT count(*) FROM `+id)
		if err != nil {
			b.Fatal(err)
		}
		if have, _ := strconv.Atoi(*res.Rows[0][0]); have != n {
			if have != 0 {
				b.Fatalf("%s holds %d events; want 0 or %d", kind, have, n)
			}
			start := time.Now()
			if err := loadEvents(ctx, l.eng, id, n, b); err != nil {
				b.Fatal(err)
			}
			if kind == "postgres" {
				if _, err := pg.Pool().Exec(ctx, `VACUUM ANALYZE lake_events`); err != nil {
					b.Fatal(err)
				}
			}
			b.Logf("LOAD %s: %d events in %v (%.0f events/s)", kind, n, time.Since(start).Round(time.Millisecond), float64(n)/time.Since(start).Seconds())
		}
		if os.Getenv("CAIRN_LAKE_BENCH_LOAD_ONLY") == "1" {
			continue
		}
		for _, q := range benchQueries {
			stmt := strings.ReplaceAll(q.lake, "{T}", id)
			b.Run(kind+"/"+q.name, func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					if _, err := l.Query(ctx, acctA, stmt); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
	b.Logf("load average: %s", loadAvg())
}

// loadEvents inserts n events (the real records with fresh eventIDs) into
// store in batches of 5,000.
func loadEvents(ctx context.Context, eng engine.Engine, store string, n int, b *testing.B) error {
	var base [][2][]byte
	for _, rr := range audittest.RealRecordsInRealRegions(b) {
		r, err := audit.Extract(rr.Raw)
		if err != nil || r.EventID == "" {
			continue
		}
		key := []byte(`"eventID":"` + r.EventID + `"`)
		i := bytes.Index(rr.Raw, key)
		if i < 0 {
			continue
		}
		at := i + len(`"eventID":"`)
		base = append(base, [2][]byte{rr.Raw[:at], rr.Raw[at+len(r.EventID):]})
	}
	rows := make([]engine.Row, 0, 5000)
	for i := 0; i < n; i++ {
		t := base[i%len(base)]
		raw := append(append(append([]byte{}, t[0]...), fmt.Sprintf("%08x-0000-4000-8000-%012x", i/len(base), i)...), t[1]...)
		rows = append(rows, engine.Row{Store: store, Raw: raw})
		if len(rows) == cap(rows) || i == n-1 {
			if err := eng.Insert(ctx, rows, 0); err != nil {
				return err
			}
			rows = rows[:0]
		}
	}
	return nil
}
