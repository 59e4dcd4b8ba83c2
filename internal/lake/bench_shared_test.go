package lake

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/lake/engine"
)

// BenchmarkSharedQueryResult measures what sharing a query costs on
// PostgreSQL: a query of 100,000 result rows (two columns)
// started on node A, timed until A sees it FINISHED (its result file
// written, then copied to lake_results and saved FINISHED) and until node
// B has read every row page by page (GetQueryResults' pages of 1,000 rows
// from lake_results). Reported per query: local-ms (A's run to its result
// file, the DuckDB-engine-like part), shared-ms (A's copy to lake_results
// and save) and read-B-ms.
func BenchmarkSharedQueryResult(b *testing.B) {
	a, bb, _ := sharedPair(b, Options{})
	ctx := context.Background()
	p := audit.Principal{AccountID: "111111111111", Region: "us-east-1"}
	s, err := a.CreateEventDataStore(ctx, p, CreateStoreRequest{Name: ptr("bench"), StartIngestion: ptr(false)})
	if err != nil {
		b.Fatal(err)
	}
	const n = 100000
	var rows []engine.Row
	for i := range n {
		rows = append(rows, engine.Row{Store: s.ID, Raw: []byte(fmt.Sprintf(`{"eventID":"00000000-0000-4000-8000-%012d","eventName":"DescribeInstances","eventSource":"ec2.amazonaws.com","recipientAccountId":"111111111111","eventTime":"2026-01-01T00:00:00Z"}`, i))})
	}
	if err := a.eng.Insert(ctx, rows, 0); err != nil {
		b.Fatal(err)
	}
	var local, shared, read time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		id, err := a.StartQuery(ctx, p, `SELECT eventID, eventName FROM `+s.ID)
		if err != nil {
			b.Fatal(err)
		}
		var t1 time.Time
		for {
			a.mu.Lock()
			q := a.queries[id]
			ended := q != nil && !q.Ended.IsZero()
			a.mu.Unlock()
			if ended && t1.IsZero() {
				t1 = time.Now()
			}
			rec, ok, err := a.opts.Queries.LoadQuery(ctx, id)
			if err != nil {
				b.Fatal(err)
			}
			if ok && rec.State == QueryFinished {
				break
			}
			if ok && rec.State != QueryQueued && rec.State != QueryRunning {
				b.Fatalf("query %s", rec.State)
			}
			time.Sleep(5 * time.Millisecond)
		}
		t2 := time.Now()
		rs, err := bb.QueryResults(ctx, p, QueryRef{ID: id})
		if err != nil || rs.Rows != n {
			b.Fatalf("B's QueryResults = %+v, %v", rs, err)
		}
		for i := 0; i < rs.Rows; {
			page, err := rs.Page(i, i+1000)
			if err != nil || len(page) == 0 {
				b.Fatalf("page %d: %d rows, %v", i, len(page), err)
			}
			i += len(page)
		}
		t3 := time.Now()
		local += t1.Sub(start)
		shared += t2.Sub(t1)
		read += t3.Sub(t2)
	}
	b.ReportMetric(float64(local.Milliseconds())/float64(b.N), "local-ms")
	b.ReportMetric(float64(shared.Milliseconds())/float64(b.N), "shared-ms")
	b.ReportMetric(float64(read.Milliseconds())/float64(b.N), "read-B-ms")
}
