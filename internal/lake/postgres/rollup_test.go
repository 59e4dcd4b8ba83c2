package postgres

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/lake/engine"
	"github.com/cairn-audit/cairn/internal/pgtest"
)

// rollupDiff counts the rows that each level of the rollup and the GROUP
// BY of lake_events by the level's buckets (rollupGroup) do not share,
// either way, and logs the levels that differ.
func rollupDiff(t *testing.T, d *DB) int {
	t.Helper()
	total := 0
	for _, l := range append(rollupLevels[:len(rollupLevels):len(rollupLevels)], fineLevel) {
		var n int
		g := `SELECT ` + rollupColumns() + ` FROM (` + rollupGroup("lake_events", "", l.unit) + `) AS x (` + rollupColumns() + `)`
		r := `SELECT ` + rollupColumns() + ` FROM ` + l.table
		if err := d.pool.QueryRow(context.Background(), `SELECT count(*) FROM ((`+r+` EXCEPT ALL `+g+`) UNION ALL (`+g+` EXCEPT ALL `+r+`)) d`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Logf("%s: %d rows differ", l.table, n)
		}
		total += n
	}
	return total
}

// TestRollupIsTheEventsGroupBy: whatever writes lake_events — Insert's
// COPY (in batches, into rows the rollup holds already), hostile records,
// retention's Delete mid-hour, a store's Delete, an UPDATE, concurrent
// Inserts beside a Delete — lake_rollup is the GROUP BY of the events,
// row for row (counts, least and greatest eventTime); and a database
// whose rollup is missing or of another version gets it rebuilt at Open.
func TestRollupIsTheEventsGroupBy(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Database(t)
	d, err := Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	const s1, s2 = "11111111-0000-4000-8000-000000000001", "22222222-0000-4000-8000-000000000002"
	recs := audittest.RealRecords(t)
	insert := func(store string, raws [][]byte) {
		t.Helper()
		rows := make([]engine.Row, len(raws))
		for i, r := range raws {
			rows[i] = engine.Row{Store: store, Raw: r}
		}
		if err := d.Insert(ctx, rows, 0); err != nil {
			t.Fatal(err)
		}
	}
	var raws [][]byte
	for _, r := range recs {
		raws = append(raws, r.Raw)
	}
	for i := 0; i < len(raws); i += 700 {
		insert(s1, raws[i:min(i+700, len(raws))])
	}
	insert(s1, raws[:900])
	insert(s2, raws[:300])
	insert(s1, [][]byte{
		[]byte(`not json`), []byte(`{}`),
		[]byte(`{"eventID":"e1","userIdentity":"a string","readOnly":"yes","eventTime":12}`),
		[]byte(`{"eventID":"e2","userIdentity":{"type":7,"arn":{"x":1}},"eventTime":"2024-13-45T00:00:00Z"}`),
		[]byte("{\"eventID\":\"e3\",\"eventName\":\"bad \xff\xfe utf8\",\"userIdentity\":{\"arn\":\"a\\u0000b\\ud800\"}}"),
		[]byte(`{"eventID":"e4","eventTime":"2024-01-02T03:59:59.9999999Z","eventName":"` + strings.Repeat("x", 10000) + `"}`),
		[]byte(`{"eventID":"e5","eventTime":"2024-01-02T03:04:05Z","errorCode":"","userIdentity":{"arn":""}}`),
		[]byte(`{"eventID":"e6","eventTime":"2024-01-02T03:04:05Z","userIdentity":{"arn":null}}`),
	})
	if n := rollupDiff(t, d); n != 0 {
		t.Fatalf("after the inserts: %d rows differ", n)
	}
	var rolled, events int
	d.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM lake_rollup), (SELECT count(*) FROM lake_events)`).Scan(&rolled, &events)
	t.Logf("%d events, %d rollup rows", events, rolled)
	// Retention cuts through the rollup's largest row that spans time:
	// the row keeps events and must lose its least eventTime.
	var cut time.Time
	if err := d.pool.QueryRow(ctx, `SELECT "_MinT" + ("_MaxT" - "_MinT") / 2 FROM lake_rollup WHERE eds_id = $1 AND "_MaxT" > "_MinT" + interval '1 second' ORDER BY "_N" DESC LIMIT 1`, s1).Scan(&cut); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, s1, cut); err != nil {
		t.Fatal(err)
	}
	if n := rollupDiff(t, d); n != 0 {
		t.Fatalf("after retention mid-hour: %d rows differ", n)
	}
	if _, err := d.pool.Exec(ctx, `UPDATE lake_events SET "eventName" = 'Renamed', "eventTime" = "eventTime" + interval '90 minutes' WHERE "eventName" LIKE 'Get%'`); err != nil {
		t.Fatal(err)
	}
	if n := rollupDiff(t, d); n != 0 {
		t.Fatalf("after an UPDATE: %d rows differ", n)
	}
	// Concurrent inserts of both stores while one's hour is cut and the
	// other is deleted.
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w * 50; i < len(raws); i += 700 {
				rows := []engine.Row{}
				for _, r := range raws[i:min(i+300, len(raws))] {
					rows = append(rows, engine.Row{Store: s1, Raw: r}, engine.Row{Store: s2, Raw: r})
				}
				if err := d.Insert(ctx, rows, 0); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for _, del := range []struct {
		store string
		at    time.Time
	}{{s1, time.Date(2023, 7, 10, 12, 30, 0, 0, time.UTC)}, {s2, time.Time{}}, {s1, time.Date(2023, 7, 10, 12, 35, 1, 0, time.UTC)}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.Delete(ctx, del.store, del.at); err != nil {
				errs <- fmt.Errorf("delete: %w", err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := rollupDiff(t, d); n != 0 {
		t.Fatalf("after concurrent inserts and deletes: %d rows differ", n)
	}
	// A node of version 1 starting during a rolling upgrade rebuilds the
	// hourly level as version 1 did (its part of the DDL is version 2's
	// rollupDDL, unchanged) and marks the database version 1: the
	// coarser levels' triggers keep them exact through its writes.
	if _, err := d.pool.Exec(ctx, `BEGIN; LOCK TABLE lake_events IN SHARE MODE;
DROP TRIGGER IF EXISTS lake_rollup_insert ON lake_events;
DROP TRIGGER IF EXISTS lake_rollup_delete ON lake_events;
DROP TRIGGER IF EXISTS lake_rollup_update ON lake_events;
DROP TABLE IF EXISTS lake_rollup;
`+rollupDDL()+`
INSERT INTO lake_rollup (`+rollupColumns()+`) `+rollupGroup("lake_events", "", "hour")+`;
UPDATE lake_meta SET v = 1 WHERE k = 'rollup_version'; COMMIT`); err != nil {
		t.Fatal(err)
	}
	insert(s1, raws[100:1500])
	if err := d.Delete(ctx, s1, time.Date(2024, 8, 14, 10, 30, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if n := rollupDiff(t, d); n != 0 {
		t.Fatalf("after version 1's rebuild and its writes: %d rows differ", n)
	}
	// A rollup of another version (or none) is rebuilt at Open.
	if _, err := d.pool.Exec(ctx, `UPDATE lake_meta SET v = 0 WHERE k = 'rollup_version'; DELETE FROM lake_rollup WHERE "eventName" = 'Renamed'`); err != nil {
		t.Fatal(err)
	}
	d2, err := Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if n := rollupDiff(t, d2); n != 0 {
		t.Fatalf("after Open rebuilt it: %d rows differ", n)
	}
}

// TestRollupRebuildIsTheTriggers: the rollup built in bulk at Open (a
// database whose rollup version is missing: an upgrade, or events loaded
// with the triggers disabled) holds, level by level, the very rows the
// triggers kept while the same events came in batch by batch.
func TestRollupRebuildIsTheTriggers(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Database(t)
	d, err := Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	const s1, s2 = "11111111-0000-4000-8000-000000000001", "22222222-0000-4000-8000-000000000002"
	var rows []engine.Row
	for i, r := range audittest.RealRecords(t) {
		rows = append(rows, engine.Row{Store: s1, Raw: r.Raw})
		if i%3 == 0 {
			rows = append(rows, engine.Row{Store: s2, Raw: r.Raw})
		}
	}
	rows = append(rows, engine.Row{Store: s1, Raw: []byte(`{"eventID":"e1","eventTime":"2024-01-02T03:04:05Z","userIdentity":{"arn":null}}`)},
		engine.Row{Store: s1, Raw: []byte(`{"eventID":"e2","userIdentity":"a string"}`)})
	for i := 0; i < len(rows); i += 500 {
		if err := d.Insert(ctx, rows[i:min(i+500, len(rows))], 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Delete(ctx, s1, time.Date(2023, 7, 10, 12, 30, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	levels := append(rollupLevels[:len(rollupLevels):len(rollupLevels)], fineLevel)
	for _, l := range levels {
		if _, err := d.pool.Exec(ctx, `CREATE TABLE kept_`+l.table+` AS SELECT `+rollupColumns()+` FROM `+l.table); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.pool.Exec(ctx, `DELETE FROM lake_meta WHERE k IN ('rollup_version', 'fine_version')`); err != nil {
		t.Fatal(err)
	}
	d2, err := Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	for _, l := range levels {
		var kept, differ int
		r := `SELECT ` + rollupColumns() + ` FROM ` + l.table
		k := `SELECT ` + rollupColumns() + ` FROM kept_` + l.table
		if err := d2.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM kept_`+l.table+`), (SELECT count(*) FROM ((`+r+` EXCEPT ALL `+k+`) UNION ALL (`+k+` EXCEPT ALL `+r+`)) d)`).Scan(&kept, &differ); err != nil {
			t.Fatal(err)
		}
		if kept < 100 || differ != 0 {
			t.Errorf("%s: the triggers kept %d rows; %d rows differ from the rebuild", l.table, kept, differ)
		}
	}
}
