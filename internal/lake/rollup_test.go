package lake

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/lake/engine"
	"github.com/cairn-audit/cairn/internal/lake/postgres"
	"github.com/cairn-audit/cairn/internal/pgtest"
)

// rollupQueries are statements the PostgreSQL engine answers from
// lake_rollup (EDS is the store): every shape the roll mode takes —
// GROUP BY and aggregates over the rolled-up columns, conditions on them
// and on eventTime against constants (hours wholly in or out of range,
// and the hours that hold a constant), date_trunc by the hour or coarser,
// DISTINCT, HAVING, ORDER BY and LIMIT, a statement's error.
var rollupQueries = []string{
	`SELECT eventName, COUNT(*) AS n FROM EDS GROUP BY eventName ORDER BY n DESC, eventName`,
	`SELECT eventSource, COUNT(*) AS n FROM EDS GROUP BY eventSource ORDER BY n DESC, eventSource`,
	`SELECT userIdentity.arn, COUNT(*) AS n FROM EDS WHERE userIdentity.arn IS NOT NULL GROUP BY userIdentity.arn ORDER BY n DESC, 1 LIMIT 10`,
	`SELECT count(*) FROM EDS`,
	`SELECT count(*), count(errorCode), count(userIdentity.userName), count(DISTINCT userIdentity.arn), min(eventTime), max(eventTime) FROM EDS`,
	`SELECT awsRegion, recipientAccountId, count(*) FROM EDS WHERE errorCode IS NOT NULL GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2`,
	`SELECT eventSource, count(*) FROM EDS WHERE eventTime > '2023-07-10 11:34:56' GROUP BY 1 ORDER BY 2 DESC, 1`,
	`SELECT eventSource, count(*), min(eventTime), max(eventTime) FROM EDS WHERE eventTime <= '2023-07-10 11:34:56' GROUP BY 1 ORDER BY 2 DESC, 1`,
	`SELECT count(*), min(eventTime), max(eventTime) FROM EDS WHERE eventTime BETWEEN TIMESTAMP '2021-04-08 23:58:00' AND TIMESTAMP '2023-07-10 12:00:00'`,
	`SELECT count(*) FROM EDS WHERE eventTime >= CAST('2023-07-10' AS DATE) AND eventTime < '2023-07-10 12:30:00' AND readOnly`,
	`SELECT count(*) FROM EDS WHERE eventTime = '2023-07-10 12:37:50'`,
	`SELECT count(*) FROM EDS WHERE eventTime <> '2023-07-10 12:37:50' AND '2021-01-01 00:00:00' < eventTime`,
	`SELECT count(*) FROM EDS WHERE eventTime < CAST('2023-07-10 12:00:00' AS TIMESTAMP WITH TIME ZONE)`,
	`SELECT count(*), min(eventTime) FROM EDS WHERE eventTime > '2999-01-01 00:00:00'`,
	`SELECT count(*) FROM EDS WHERE eventTime > 'not a time'`,
	`SELECT date_trunc('day', eventTime) AS d, count(*) FROM EDS GROUP BY 1 ORDER BY 1`,
	`SELECT date_trunc('hour', eventTime) AS h, eventSource, count(*) FROM EDS GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2`,
	`SELECT DISTINCT eventCategory, eventType, managementEvent FROM EDS`,
	`SELECT userIdentity.type, userIdentity.accountId, count(*) FROM EDS GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2`,
	`SELECT e.eventName, max(e.eventTime) AS last FROM EDS e WHERE e.readOnly AND e.eventTime < '2023-07-10 12:20:00' GROUP BY e.eventName HAVING count(*) > 2 ORDER BY last DESC, 1 LIMIT 5`,
	`SELECT lower(eventName) AS n, count(*) FROM EDS WHERE eventName LIKE 'Get%' OR errorCode = 'AccessDenied' GROUP BY 1 ORDER BY 2 DESC, 1`,
	`SELECT eventName, max(awsRegion), count(DISTINCT recipientAccountId), min(userIdentity.principalId) FROM EDS GROUP BY 1 ORDER BY 1`,
	`SELECT CASE WHEN errorCode IS NULL THEN 'ok' ELSE errorCode END AS outcome, count(*) FROM EDS GROUP BY 1 ORDER BY 2 DESC, 1`,
	`SELECT eventName FROM EDS GROUP BY eventName HAVING count(*) > 10 ORDER BY 1`,
	`SELECT readOnly, count(*) FROM EDS WHERE NOT managementEvent OR managementEvent IS NULL GROUP BY 1 ORDER BY 1`,
	// The levels: months, days and hours of a range whose ends fall
	// inside hours, days and months; date_trunc by a week (days) and by
	// an hour beside a year (hours).
	`SELECT eventName, count(*), min(eventTime), max(eventTime) FROM EDS WHERE eventTime >= '2021-12-05 13:25:00' AND eventTime < '2024-08-15 07:10:00' GROUP BY 1 ORDER BY 2 DESC, 1`,
	`SELECT eventSource, count(*) FROM EDS WHERE eventTime BETWEEN '2021-04-08 23:58:00' AND '2023-07-10 12:20:00.5' AND eventTime <> '2022-02-01 00:00:00' GROUP BY 1 ORDER BY 2 DESC, 1`,
	// Both ends in one hour, one on a fine bucket's boundary, one inside a
	// fine bucket: the hour's fine buckets between them, the events of
	// the one that holds a time.
	`SELECT eventName, count(*), min(eventTime), max(eventTime) FROM EDS WHERE eventTime >= '2023-07-10 12:10:00' AND eventTime < '2023-07-10 12:47:13' GROUP BY 1 ORDER BY 2 DESC, 1`,
	`SELECT userIdentity.arn, count(*) FROM EDS WHERE eventTime > '2023-07-10 11:59:59.999' AND eventTime <= '2023-07-10 12:40:00' GROUP BY 1 ORDER BY 2 DESC, 1`,
	`SELECT date_trunc('month', eventTime) AS m, eventSource, count(*), min(eventTime), max(eventTime) FROM EDS GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2`,
	`SELECT date_trunc('week', eventTime) AS w, count(*) FROM EDS WHERE eventTime >= '2021-04-01 06:00:00' GROUP BY 1 ORDER BY 1`,
	`SELECT date_trunc('year', eventTime) AS y, date_trunc('hour', eventTime) AS h, count(*) FROM EDS WHERE eventTime < '2024-08-20 12:30:00' GROUP BY 1, 2 ORDER BY 2`,
}

// generalQueries are statements the rollup cannot answer: each runs over
// the events (the fallback), with the same answer as on DuckDB.
var generalQueries = []string{
	`SELECT eventName, count(*) FROM EDS WHERE sourceIPAddress LIKE '10.%' GROUP BY 1 ORDER BY 2 DESC, 1`,
	`SELECT sum(1), avg(CAST(readOnly AS INTEGER)) FROM EDS`,
	`SELECT eventName, count(*) FILTER (WHERE errorCode IS NOT NULL) FROM EDS GROUP BY eventName ORDER BY 1`,
	`SELECT count(*) FROM EDS WHERE eventTime > '2023-07-10 11:00:00' OR eventName = 'ListBuckets'`,
	`SELECT hour(eventTime), count(*) FROM EDS GROUP BY 1 ORDER BY 1`,
	`SELECT date_trunc('minute', eventTime) AS m, count(*) FROM EDS GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5`,
	`SELECT eventName FROM EDS GROUP BY eventName HAVING count(*) > (SELECT 100) ORDER BY 1`,
	`SELECT count(*) FROM EDS a JOIN EDS b ON a.eventID = b.eventID`,
	`WITH x AS (SELECT * FROM EDS) SELECT count(*) FROM x`,
	`SELECT count(*) FROM EDS GROUP BY eventID ORDER BY 1 DESC LIMIT 3`,
	`SELECT eventName FROM EDS WHERE eventTime > '2023-07-10 11:00:00' ORDER BY eventID LIMIT 5`,
	`SELECT count(*) FROM EDS WHERE userIdentity.sessionContext.attributes.mfaAuthenticated = 'true'`,
	`SELECT max(eventTime), count(*) FROM EDS WHERE eventTime > date_trunc('hour', CAST('2023-07-10 12:10:00' AS TIMESTAMP))`,
	`SELECT eventName, string_agg(awsRegion, ',') FROM EDS WHERE eventName = 'ListBuckets' GROUP BY 1`,
	`SELECT count(*) FROM EDS WHERE eventName = 'x' UNION ALL SELECT count(*) FROM EDS`,
}

// TestRollupAnswersAsTheEvents is the rollup's differential test: the
// real records (in several inserts, beside another store's) in one
// PostgreSQL database read by two engines, one answering from lake_rollup
// and one (NoRollup) over the events, and by a DuckDB engine; every
// statement of the Lake suite (TestEnginesAgree's) and of rollupQueries
// and generalQueries answers the same from both PostgreSQL engines, the
// rollup's and generalQueries' the same as on DuckDB; each of
// rollupQueries is answered from the rollup and none of generalQueries.
// Then retention deletes mid-hour and a second load, and the statements
// again.
func TestRollupAnswersAsTheEvents(t *testing.T) {
	ctx := context.Background()
	const id, other = "aaaaaaaa-0000-4000-8000-00000000000a", "bbbbbbbb-0000-4000-8000-00000000000b"
	dsn := pgtest.Database(t)
	rolled, err := postgres.Open(ctx, dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	general, err := postgres.Open(ctx, dsn, postgres.Options{NoRollup: true})
	if err != nil {
		t.Fatal(err)
	}
	lake := func(eng engine.Engine) *Lake {
		dir := t.TempDir()
		l, err := Open(dir, Options{Engine: eng, QueryTimeout: time.Minute, MaxResultBytes: 64 << 20})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		l.stores[id] = &EventDataStore{ID: id, Account: acctA, Name: "real", Region: "us-east-1", Status: StatusEnabled, RetentionPeriod: 3653}
		return l
	}
	lr, lg := lake(rolled), lake(general)
	ld := openLakeOn(t, "duckdb", Options{QueryTimeout: time.Minute, MaxResultBytes: 64 << 20})
	ld.stores[id] = lr.stores[id]
	recs := audittest.RealRecords(t)
	load := func(recs []audittest.RealRecord) {
		for _, eng := range []engine.Engine{rolled, ld.eng} {
			for i := 0; i < len(recs); i += 1000 {
				var rows []engine.Row
				for _, r := range recs[i:min(i+1000, len(recs))] {
					rows = append(rows, engine.Row{Store: id, Raw: r.Raw}, engine.Row{Store: other, Raw: r.Raw})
				}
				if err := eng.Insert(ctx, rows, 0); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	load(recs)
	var stmts []string
	for _, q := range readSampleQueries(t) {
		stmts = append(stmts, storePlaceholder.ReplaceAllString(q.sql, id))
	}
	for _, c := range trinoCases {
		stmts = append(stmts, `SELECT `+c.expr+` FROM `+id+` WHERE requestParameters IS NOT NULL ORDER BY eventID LIMIT 3`)
	}
	for _, c := range aggregateCases {
		stmts = append(stmts, `SELECT `+c.expr+` FROM `+id)
	}
	for _, q := range engineQueries {
		stmts = append(stmts, strings.ReplaceAll(q, "EDS", id))
	}
	check := func(when string) {
		t.Helper()
		suite := 0
		for _, s := range stmts {
			before := rolled.Rollups()
			if r, g := answer(ctx, lr, s), answer(ctx, lg, s); r != g {
				t.Errorf("%s: %s\nfrom the rollup: %s\nover the events: %s", when, s, clipText(r), clipText(g))
			}
			suite += int(rolled.Rollups() - before)
		}
		for _, list := range []struct {
			stmts  []string
			rolled bool
		}{{rollupQueries, true}, {generalQueries, false}} {
			for _, q := range list.stmts {
				s := strings.ReplaceAll(q, "EDS", id)
				before := rolled.Rollups()
				r, g, d := answer(ctx, lr, s), answer(ctx, lg, s), answer(ctx, ld, s)
				if got := rolled.Rollups() > before; got != list.rolled {
					t.Errorf("%s: %s: answered from the rollup: %v; want %v", when, s, got, list.rolled)
				}
				if r != g || r != d {
					t.Errorf("%s: %s\nfrom the rollup: %s\nover the events: %s\nDuckDB: %s", when, s, clipText(r), clipText(g), clipText(d))
				}
			}
		}
		t.Logf("%s: %d of the suite's %d statements answered from the rollup", when, suite, len(stmts))
	}
	check("loaded")
	// Retention mid-hour (2023-07-10 12:20:00.5: the rollup's rows of that
	// hour lose some of their events) and a store deleted, then more
	// events into the hours the rollup already holds.
	cut := time.Date(2023, 7, 10, 12, 20, 0, 5e8, time.UTC)
	for _, eng := range []engine.Engine{rolled, ld.eng} {
		if err := eng.Delete(ctx, id, cut); err != nil {
			t.Fatal(err)
		}
		if err := eng.Delete(ctx, other, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	check("after retention")
	load(recs[:1500])
	check("loaded again")
}
