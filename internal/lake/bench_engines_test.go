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
// CAIRN_LAKE_BENCH_N of them (default 100,000), in the real records' own
// hours or, with CAIRN_LAKE_BENCH_DAYS, spread evenly over that many days
// before 2025-06-01 as bench/gen -days spreads them (trails as they
// deliver events: few share an hour and a combination of columns).
//
// The data is kept between runs so that the measurement runs apart from
// the load: CAIRN_LAKE_BENCH_ENGINES_DIR names a folder for lake.duckdb
// and CAIRN_LAKE_BENCH_ENGINES_PG a PostgreSQL database (both reused when
// they hold the events; without them, a temporary folder and a database of
// pgtest). CAIRN_LAKE_BENCH_LOAD_ONLY=1 loads and stops; a load stopped
// midway goes on from where it stopped (batches of 5,000 events, each
// committed; CAIRN_LAKE_BENCH_BATCH sets another size, and a load goes on
// from a multiple of it). CAIRN_LAKE_BENCH_ENGINES=duckdb or postgres runs
// one engine only (two loads side by side). CAIRN_LAKE_BENCH_PG_BULK=1
// loads PostgreSQL's events with the rollup's triggers dropped and its
// version removed, so that the next Open builds the rollup from the events
// in bulk, as an upgrade does (migrateRollup: the same grouping the
// triggers keep; TestRollupRebuildIsTheTriggers checks both give the same
// rows); the benchmark opens the engine again after the load for that
// (nothing else may open the database during the load).
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
	days, _ := strconv.Atoi(os.Getenv("CAIRN_LAKE_BENCH_DAYS"))
	batch := 5000
	if v, err := strconv.Atoi(os.Getenv("CAIRN_LAKE_BENCH_BATCH")); err == nil && v > 0 {
		batch = v
	}
	const id = "eeeeeeee-0000-4000-8000-00000000000e"
	// Only the engines the run uses are opened: an Open of the PostgreSQL
	// engine during another process's bulk load would rebuild its rollup.
	only := os.Getenv("CAIRN_LAKE_BENCH_ENGINES")
	engs := map[string]engine.Engine{}
	var pg *postgres.DB
	var dsn string
	if only == "" || only == "duckdb" {
		duck, err := duckdb.Open(filepath.Join(dir, DBFile), duckdb.Options{})
		if err != nil {
			b.Fatal(err)
		}
		engs["duckdb"] = duck
	}
	if only == "" || only == "postgres" {
		dsn = os.Getenv("CAIRN_LAKE_BENCH_ENGINES_PG")
		if dsn == "" {
			dsn = pgtest.Database(b)
		}
		var err error
		if pg, err = postgres.Open(ctx, dsn, postgres.Options{}); err != nil {
			b.Fatal(err)
		}
		engs["postgres"] = pg
	}
	answers := map[string]string{} // a statement's rows on the first engine
	for _, kind := range engines {
		if engs[kind] == nil {
			continue
		}
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
			if have > n || have%batch != 0 {
				b.Fatalf("%s holds %d events; want at most %d, in batches of %d", kind, have, n, batch)
			}
			bulk := kind == "postgres" && os.Getenv("CAIRN_LAKE_BENCH_PG_BULK") == "1"
			if bulk {
				// The version removed first: a load stopped midway leaves
				// a database whose next Open rebuilds the rollup (and
				// creates its triggers again). Dropped, not disabled:
				// PostgreSQL 15 still fills a disabled trigger's
				// transition table (200,000 rows of 500 bytes: 106 MB of
				// temporary files, 2.8 MB without the trigger). Nothing else may open the database meanwhile: its
				// Open would rebuild the rollup from the events loaded so
				// far and create the triggers again, which then fire for
				// the rest of the load.
				drop := `DELETE FROM lake_meta WHERE k = 'rollup_version';`
				for _, tr := range []string{"lake_rollup", "lake_rollup_wider"} {
					for _, kind := range []string{"insert", "delete", "update"} {
						drop += ` DROP TRIGGER IF EXISTS ` + tr + `_` + kind + ` ON lake_events;`
					}
				}
				if _, err := pg.Pool().Exec(ctx, drop); err != nil {
					b.Fatal(err)
				}
			}
			start := time.Now()
			if err := loadEvents(ctx, l.eng, id, have, n, days, batch, b); err != nil {
				b.Fatal(err)
			}
			b.Logf("LOAD %s: events %d..%d in %v (%.0f events/s)", kind, have, n, time.Since(start).Round(time.Millisecond), float64(n-have)/time.Since(start).Seconds())
			if bulk {
				rstart := time.Now()
				again, err := postgres.Open(ctx, dsn, postgres.Options{})
				if err != nil {
					b.Fatal(err)
				}
				again.Close()
				b.Logf("ROLLUP postgres: built in bulk at Open in %v", time.Since(rstart).Round(time.Millisecond))
			}
			if kind == "postgres" {
				if _, err := pg.Pool().Exec(ctx, `VACUUM ANALYZE lake_events`); err != nil {
					b.Fatal(err)
				}
			}
		}
		if os.Getenv("CAIRN_LAKE_BENCH_LOAD_ONLY") == "1" {
			continue
		}
		for _, q := range benchEngineQueries(days) {
			stmt := strings.ReplaceAll(q.lake, "{T}", id)
			res, err := l.Query(ctx, acctA, stmt)
			if err != nil {
				b.Fatalf("%s %s: %v", kind, q.name, err)
			}
			got := fmt.Sprint(rowStrings(res.Rows))
			if want, ok := answers[q.name]; ok && got != want {
				b.Fatalf("%s %s answers %s; the other engine %s", kind, q.name, got, want)
			}
			answers[q.name] = got
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

// benchEngineQueries are BenchmarkEngines' statements: benchQueries and, over
// events spread over days, a group-by of a range whose ends fall inside
// hours (the rollup's edges read from finer levels and the events).
func benchEngineQueries(days int) []struct{ name, lake, peer string } {
	qs := benchQueries
	if days > 1 {
		from := spreadEnd.AddDate(0, 0, -days*2/3).Add(13*time.Hour + 25*time.Minute)
		to := spreadEnd.AddDate(0, 0, -days/3).Add(8*time.Hour + 10*time.Minute)
		qs = append(qs[:len(qs):len(qs)], struct{ name, lake, peer string }{"range-groupby-eventName",
			`SELECT eventName, COUNT(*) AS n FROM {T} WHERE eventTime >= '` + from.Format(time.DateTime) + `' AND eventTime < '` + to.Format(time.DateTime) +
				`' GROUP BY eventName ORDER BY n DESC, eventName`, ""})
	}
	return qs
}

// spreadEnd is the end of CAIRN_LAKE_BENCH_DAYS' range, as bench/gen's.
var spreadEnd = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

// rowStrings are a result's rows as strings, NULL as "<NULL>".
func rowStrings(rows [][]*string) [][]string {
	out := make([][]string, len(rows))
	for i, r := range rows {
		for _, v := range r {
			if v == nil {
				out[i] = append(out[i], "<NULL>")
			} else {
				out[i] = append(out[i], *v)
			}
		}
	}
	return out
}

// loadEvents inserts n events (the real records with fresh eventIDs) into
// store in batches of batch events, from the from-th (a multiple of batch:
// the batches before it were loaded before); with days > 0 the events' times are spread
// evenly over the days before spreadEnd, oldest first.
func loadEvents(ctx context.Context, eng engine.Engine, store string, from, n, days, batch int, b *testing.B) error {
	type tmpl struct {
		raw             []byte
		idAt, idLen     int
		timeAt, timeLen int
	}
	var base []tmpl
	for _, rr := range audittest.RealRecordsInRealRegions(b) {
		r, err := audit.Extract(rr.Raw)
		if err != nil || r.EventID == "" {
			continue
		}
		i := bytes.Index(rr.Raw, []byte(`"eventID":"`+r.EventID+`"`))
		if i < 0 {
			continue
		}
		t := tmpl{raw: rr.Raw, idAt: i + len(`"eventID":"`), idLen: len(r.EventID), timeAt: -1}
		if j := bytes.Index(rr.Raw, []byte(`"eventTime":"`)); j >= 0 {
			if k := bytes.IndexByte(rr.Raw[j+len(`"eventTime":"`):], '"'); k >= 0 {
				t.timeAt, t.timeLen = j+len(`"eventTime":"`), k
			}
		}
		base = append(base, t)
	}
	rows := make([]engine.Row, 0, batch)
	for i := from; i < n; i++ {
		t := base[i%len(base)]
		type cut struct {
			at, n int
			v     string
		}
		cuts := []cut{{t.idAt, t.idLen, fmt.Sprintf("%08x-0000-4000-8000-%012x", i/len(base), i)}}
		if days > 0 && t.timeAt >= 0 {
			span := int64(days) * 86400
			ts := time.Unix(spreadEnd.Unix()-span+span*int64(i)/int64(n), 0).UTC().Format("2006-01-02T15:04:05Z")
			cuts = append(cuts, cut{t.timeAt, t.timeLen, ts})
			if cuts[1].at < cuts[0].at {
				cuts[0], cuts[1] = cuts[1], cuts[0]
			}
		}
		var raw []byte
		prev := 0
		for _, c := range cuts {
			raw = append(append(raw, t.raw[prev:c.at]...), c.v...)
			prev = c.at + c.n
		}
		raw = append(raw, t.raw[prev:]...)
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
