package lake

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/lake/engine"
)

const (
	keyA = "AKIAAAAAAAAAAAAAAAAA" // account 111111111111
	keyB = "AKIABBBBBBBBBBBBBBBB" // account 222222222222
)

// storeWithEvents creates a store of c's account and feeds it n
// management events of that account; it returns the store's ID.
func storeWithEvents(t *testing.T, e *env, c *cloudtrail.Client, account, name string, n int) string {
	t.Helper()
	ctx := context.Background()
	cr, err := c.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String(name), RetentionPeriod: aws.Int32(3653)})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(cr.EventDataStoreArn)
	var recs []audit.Record
	for i := range n {
		raw := fmt.Sprintf(`{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","accountId":%q,"userName":"u"},"eventTime":%q,"eventSource":"s3.amazonaws.com","eventName":"ListBuckets","awsRegion":"us-east-1","sourceIPAddress":"192.0.2.1","requestID":"R%d","eventID":"%s-%08d-0000-4000-8000-000000000000","readOnly":true,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":%q,"eventCategory":"Management"}`,
			account, time.Now().UTC().Add(-time.Duration(i)*time.Second).Format(time.RFC3339), i, name, i, account)
		r, err := audit.Extract([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	if _, err := e.store.Append(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if _, err := e.lake.Sync(ctx, e.store); err != nil {
		t.Fatal(err)
	}
	return arn[strings.LastIndex(arn, "/")+1:]
}

func startQuery(t *testing.T, c *cloudtrail.Client, stmt string) string {
	t.Helper()
	q, err := c.StartQuery(context.Background(), &cloudtrail.StartQueryInput{QueryStatement: &stmt})
	if err != nil {
		t.Fatalf("StartQuery %q: %v", stmt, err)
	}
	return *q.QueryId
}

// resultFiles counts the result files of the Lake.
func resultFiles(t *testing.T, l *Lake) int {
	t.Helper()
	ents, err := os.ReadDir(l.resultsDir)
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestQueryResultsBounded: finished results are files read a page at a
// time, an account holds a bounded number and size of them, and a result
// evicted or expired answers GetQueryResults and DescribeQuery with
// QueryIdNotFoundException, as AWS does for an unknown or expired query.
func TestQueryResultsBounded(t *testing.T) {
	now := time.Now()
	var clockMu sync.Mutex
	reg := prometheus.NewRegistry()
	e := newEnvWith(t, Options{MaxHeldResults: 3, MaxHeldResultBytes: 200 << 10, MaxResultBytes: 150 << 10,
		Now: func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }, Registerer: reg})
	ctx := context.Background()
	a, b := e.client(keyA), e.client(keyB)
	idA := storeWithEvents(t, e, a, "111111111111", "alpha", 20)
	idB := storeWithEvents(t, e, b, "222222222222", "bravo", 20)
	// The events fed in, not the account's own API calls recorded too.
	const mine = ` WHERE eventName = 'ListBuckets'`
	gone := func(t *testing.T, c *cloudtrail.Client, q string) {
		t.Helper()
		if _, err := c.GetQueryResults(ctx, &cloudtrail.GetQueryResultsInput{QueryId: &q}); code(err) != "QueryIdNotFoundException" {
			t.Errorf("GetQueryResults of a forgotten query: %v; want QueryIdNotFoundException", err)
		}
		if _, err := c.DescribeQuery(ctx, &cloudtrail.DescribeQueryInput{QueryId: &q}); code(err) != "QueryIdNotFoundException" {
			t.Errorf("DescribeQuery of a forgotten query: %v; want QueryIdNotFoundException", err)
		}
	}
	held := func(t *testing.T, c *cloudtrail.Client, q string, rows int) {
		t.Helper()
		if d := waitQuery(t, c, q); d.QueryStatus != types.QueryStatusFinished {
			t.Fatalf("query %s: %s %s", q, d.QueryStatus, aws.ToString(d.ErrorMessage))
		}
		r, err := c.GetQueryResults(ctx, &cloudtrail.GetQueryResultsInput{QueryId: &q})
		if err != nil || aws.ToInt32(r.QueryStatistics.TotalResultsCount) != int32(rows) {
			n := -1
			if err == nil {
				n = int(aws.ToInt32(r.QueryStatistics.TotalResultsCount))
			}
			t.Errorf("GetQueryResults of a held query: %v, %d rows; want %d rows", err, n, rows)
		}
	}

	t.Run("pages read from the file match the query", func(t *testing.T) {
		// 400 rows (more than one index step of the file), NULLs and
		// empty strings included, read 7 at a time.
		stmt := `SELECT a.eventID AS id, CASE WHEN b.requestID = 'R3' THEN NULL WHEN b.requestID = 'R4' THEN '' ELSE b.requestID END AS r FROM ` + idA + ` a CROSS JOIN ` + idA + ` b WHERE a.eventName = 'ListBuckets' AND b.eventName = 'ListBuckets' ORDER BY a.eventID, b.requestID`
		got := runQuery(t, a, stmt)
		want, err := e.lake.Query(ctx, "111111111111", stmt)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 400 || len(want.Rows) != 400 {
			t.Fatalf("rows: %d through the API, %d directly; want 400", len(got), len(want.Rows))
		}
		for i, row := range want.Rows {
			for j, col := range want.Columns {
				g, ok := got[i][col]
				if row[j] == nil && ok || row[j] != nil && (!ok || g != *row[j]) {
					t.Fatalf("row %d column %s: %q (present %t); want %v", i, col, g, ok, row[j])
				}
			}
		}
	})

	t.Run("a page stops at its byte cap and NextToken goes on", func(t *testing.T) {
		e.lake.opts.MaxResultBytes, e.lake.opts.MaxHeldResultBytes = 64<<20, 64<<20
		defer func() { e.lake.opts.MaxResultBytes, e.lake.opts.MaxHeldResultBytes = 150<<10, 200<<10 }()
		q := startQuery(t, a, `SELECT repeat('x', 1000000) AS v FROM `+idA+` LIMIT 12`)
		waitQuery(t, a, q)
		var next *string
		pages, rows := 0, 0
		for {
			r, err := a.GetQueryResults(ctx, &cloudtrail.GetQueryResultsInput{QueryId: &q, NextToken: next})
			if err != nil {
				t.Fatal(err)
			}
			pages++
			rows += len(r.QueryResultRows)
			if next = r.NextToken; next == nil {
				break
			}
		}
		if rows != 12 || pages < 3 {
			t.Errorf("12 rows of 1 MB: %d rows in %d pages; want 12 rows in pages of at most %d bytes", rows, pages, maxPageBytes)
		}
	})

	t.Run("bad NextTokens", func(t *testing.T) {
		q := startQuery(t, a, `SELECT eventID FROM `+idA+mine)
		waitQuery(t, a, q)
		for _, tok := range []string{"abcd", "00000000021", "0000000021", "-000000001", "1e3 ", "9999999999"} {
			if _, err := a.GetQueryResults(ctx, &cloudtrail.GetQueryResultsInput{QueryId: &q, NextToken: aws.String(tok)}); code(err) != "InvalidNextTokenException" {
				t.Errorf("NextToken %q: %v; want InvalidNextTokenException", tok, err)
			}
		}
	})

	t.Run("a result over the size limit fails the query and leaves no file", func(t *testing.T) {
		q := startQuery(t, a, `SELECT repeat('y', 10000) AS v FROM `+idA+` a CROSS JOIN `+idA+` b`)
		d := waitQuery(t, a, q)
		if d.QueryStatus != types.QueryStatusFailed || !strings.Contains(aws.ToString(d.ErrorMessage), "limit") {
			t.Errorf("400 rows of 10 KB over a 150 KB limit: %s %q; want FAILED", d.QueryStatus, aws.ToString(d.ErrorMessage))
		}
		if _, err := os.Stat(filepath.Join(e.lake.resultsDir, q+".rows")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the failed query's result file: %v; want none", err)
		}
	})

	t.Run("count quota evicts the oldest of the account only", func(t *testing.T) {
		qb := startQuery(t, b, `SELECT eventID FROM `+idB+mine)
		held(t, b, qb, 20)
		var qs []string
		for i := range 6 {
			q := startQuery(t, a, fmt.Sprintf(`SELECT eventID, %d AS n FROM %s%s`, i, idA, mine))
			held(t, a, q, 20)
			qs = append(qs, q)
		}
		for _, q := range qs[:3] {
			gone(t, a, q)
		}
		for _, q := range qs[3:] {
			held(t, a, q, 20)
		}
		held(t, b, qb, 20) // the other account's result stays
		if n := resultFiles(t, e.lake); n != 4 {
			t.Errorf("result files: %d; want 4 (3 of one account, 1 of the other)", n)
		}
		l, err := a.ListQueries(ctx, &cloudtrail.ListQueriesInput{EventDataStore: &idA})
		if err != nil || len(l.Queries) != 3 {
			t.Errorf("ListQueries after eviction: %v, %d queries; want 3", err, len(l.Queries))
		}
	})

	t.Run("byte quota evicts the oldest", func(t *testing.T) {
		// 20 rows of 4 KB: 80 KB each, 200 KB held at most: two stay.
		var qs []string
		for i := range 3 {
			q := startQuery(t, a, fmt.Sprintf(`SELECT repeat('z', 4000) AS v, %d AS n FROM %s%s`, i, idA, mine))
			held(t, a, q, 20)
			qs = append(qs, q)
		}
		gone(t, a, qs[0])
		held(t, a, qs[1], 20)
		held(t, a, qs[2], 20)
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				got[mf.GetName()] += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
		if got["cairn_lake_query_results_evicted_total"] < 4 || got["cairn_lake_query_results_bytes"] <= 0 {
			t.Errorf("metrics: %v; want at least 4 evictions and result bytes held", got)
		}
	})

	t.Run("results expire after 7 days", func(t *testing.T) {
		qb := startQuery(t, b, `SELECT eventID FROM `+idB+mine)
		held(t, b, qb, 20)
		clockMu.Lock()
		now = now.Add(7*24*time.Hour + time.Minute)
		clockMu.Unlock()
		gone(t, b, qb)
	})
}

// TestQueryAdmission: an account's queued and running queries are capped
// (MaxConcurrentQueriesException through aws-sdk-go-v2), one account's
// queries wait for its running slot without keeping another account's
// from running, and a query past the time limit ends TIMED_OUT.
func TestQueryAdmission(t *testing.T) {
	e := newEnvWith(t, Options{MaxConcurrentQueries: 2, MaxRunningQueries: 2, MaxRunningQueriesPerAccount: 1})
	ctx := context.Background()
	a, b := e.client(keyA), e.client(keyB)
	idA := storeWithEvents(t, e, a, "111111111111", "alpha", 40)
	idB := storeWithEvents(t, e, b, "222222222222", "bravo", 5)
	// 40^7 rows: runs until cancelled.
	endless := `SELECT count(*) AS n FROM ` + idA + ` a`
	for _, t := range []string{"b", "c", "d", "e", "f", "g"} {
		endless += ` CROSS JOIN ` + idA + ` ` + t
	}
	first := startQuery(t, a, endless)
	second := startQuery(t, a, endless)
	for _, stmt := range []string{endless, `SELECT 1 FROM ` + idA} {
		if _, err := a.StartQuery(ctx, &cloudtrail.StartQueryInput{QueryStatement: aws.String(stmt)}); code(err) != "MaxConcurrentQueriesException" {
			t.Errorf("a third query of the account: %v; want MaxConcurrentQueriesException", err)
		}
	}
	// The other account's queries run, one after the other, while the
	// first account's two hold its share.
	for i := range 3 {
		q := startQuery(t, b, fmt.Sprintf(`SELECT eventID, %d AS n FROM %s`, i, idB))
		if d := waitQuery(t, b, q); d.QueryStatus != types.QueryStatusFinished {
			t.Fatalf("other account's query %d: %s %s", i, d.QueryStatus, aws.ToString(d.ErrorMessage))
		}
	}
	d, err := a.DescribeQuery(ctx, &cloudtrail.DescribeQueryInput{QueryId: &second})
	if err != nil || d.QueryStatus != types.QueryStatusQueued {
		t.Errorf("the account's second query while its first runs: %v %v; want QUEUED", err, d.QueryStatus)
	}
	// Cancelling the running one admits the queued one; cancelling a
	// queued query frees its place.
	for _, q := range []string{first, second} {
		if _, err := a.CancelQuery(ctx, &cloudtrail.CancelQueryInput{QueryId: aws.String(q)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{first, second} {
		if d := waitQuery(t, a, q); d.QueryStatus != types.QueryStatusCancelled {
			t.Errorf("cancelled query: %s", d.QueryStatus)
		}
	}
	q := startQuery(t, a, `SELECT eventID FROM `+idA)
	if d := waitQuery(t, a, q); d.QueryStatus != types.QueryStatusFinished {
		t.Errorf("after cancelling: %s %s", d.QueryStatus, aws.ToString(d.ErrorMessage))
	}

	// The time limit ends a query, running or queued, as TIMED_OUT.
	e.lake.opts.QueryTimeout = 300 * time.Millisecond
	running, queued := startQuery(t, a, endless), startQuery(t, a, endless)
	for _, q := range []string{running, queued} {
		if d := waitQuery(t, a, q); d.QueryStatus != types.QueryStatusTimedOut {
			t.Errorf("query past the time limit: %s; want TIMED_OUT", d.QueryStatus)
		}
	}
	e.lake.mu.Lock()
	defer e.lake.mu.Unlock()
	if e.lake.active != 0 || len(e.lake.waiting) != 0 || len(e.lake.activeBy) != 0 || e.lake.running["111111111111"] != 0 {
		t.Errorf("after every query ended: %d running, %d waiting, %v, %v", e.lake.active, len(e.lake.waiting), e.lake.activeBy, e.lake.running)
	}
}

// TestRunningQueriesDoNotHoldTheLogOpen: a running query can block
// checkpoints, and meanwhile each small write costs hundreds of KB of
// write-ahead log; the log a restart replays stays bounded anyway (running
// queries are interrupted past maxBlockedCommits, new ones wait for the
// checkpoint) and queries run again afterwards.
func TestRunningQueriesDoNotHoldTheLogOpen(t *testing.T) {
	e := newEnvWith(t, Options{CheckpointCommits: 5})
	ctx := context.Background()
	a := e.client(keyA)
	idA := storeWithEvents(t, e, a, "111111111111", "alpha", 40)
	// Writes not yet checkpointed when the query starts, as under load.
	for i := range 3 {
		if err := e.lake.eng.Insert(ctx, []engine.Row{{Store: idA, Raw: []byte(fmt.Sprintf(`{"eventID":"pre-%d"}`, i))}}, 0); err != nil {
			t.Fatal(err)
		}
		e.lake.wrote(ctx)
	}
	endless := `SELECT count(*) AS n FROM ` + idA + ` a`
	for _, t := range []string{"b", "c", "d", "e", "f", "g"} {
		endless += ` CROSS JOIN ` + idA + ` ` + t
	}
	q := startQuery(t, a, endless)
	for d, _ := a.DescribeQuery(ctx, &cloudtrail.DescribeQueryInput{QueryId: &q}); d == nil || d.QueryStatus != types.QueryStatusRunning; d, _ = a.DescribeQuery(ctx, &cloudtrail.DescribeQueryInput{QueryId: &q}) {
		time.Sleep(10 * time.Millisecond)
	}
	var peak int64
	for i := range 60 {
		if err := e.lake.eng.Insert(ctx, []engine.Row{{Store: idA, Raw: []byte(fmt.Sprintf(`{"eventID":"w-%d"}`, i))}}, 0); err != nil {
			t.Fatal(err)
		}
		e.lake.wrote(ctx)
		peak = max(peak, e.lake.commits.Load())
		time.Sleep(5 * time.Millisecond)
	}
	if limit := e.lake.maxBlockedCommits() + 10; peak > limit {
		t.Errorf("transactions in the log while a query ran: up to %d; want at most %d", peak, limit)
	}
	// Where DuckDB checkpointed beside the query, it still runs.
	a.CancelQuery(ctx, &cloudtrail.CancelQueryInput{QueryId: &q})
	if d := waitQuery(t, a, q); d.QueryStatus == types.QueryStatusFailed && !strings.Contains(aws.ToString(d.ErrorMessage), "checkpoint") {
		t.Errorf("interrupted query: %s %q", d.QueryStatus, aws.ToString(d.ErrorMessage))
	} else {
		t.Logf("the query ended %s (peak %d transactions in the log)", d.QueryStatus, peak)
	}
	after := startQuery(t, a, `SELECT count(*) AS n FROM `+idA)
	if d := waitQuery(t, a, after); d.QueryStatus != types.QueryStatusFinished {
		t.Errorf("a query after the checkpoint: %s %s", d.QueryStatus, aws.ToString(d.ErrorMessage))
	}
}
