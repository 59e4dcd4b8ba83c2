package postgres

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/pgtest"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

func partitions(t *testing.T, s *Store) []string {
	t.Helper()
	rows, err := s.pool.Query(context.Background(), `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'events'::regclass ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

// openAt opens a store on a fresh test database whose clock reads *now
// (the test moves it); the test's cleanup closes it.
func openAt(t *testing.T, now *time.Time) *Store {
	t.Helper()
	s, err := Open(context.Background(), pgtest.Database(t), Options{Now: func() time.Time { return *now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Retention drops whole received-day partitions and deletes only inside
// the day the cut falls in; lookups and the feed see what is left.
func TestRetentionDropsPartitions(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := openAt(t, &now)
	g := storetest.NewGen(1, time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)) // old eventTimes: received decides
	var kept, first []audit.Record
	for day := range 5 {
		recs := g.Records(20)
		if day == 0 {
			first = recs
		}
		if _, err := s.Append(ctx, recs); err != nil {
			t.Fatal(err)
		}
		if day >= 3 {
			kept = append(kept, recs...)
		}
		now = now.Add(24 * time.Hour)
	}
	if got := len(partitions(t, s)); got != 6 { // five days and the next
		t.Fatalf("%d partitions after five days; want 6: %v", got, partitions(t, s))
	}
	// Cut at 12:00 on day 3 (0-based): days 0-2 go, day 3 received at 12:00 stays.
	cut := time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)
	n, err := s.DeleteReceivedBefore(ctx, cut)
	if err != nil || n != 60 {
		t.Fatalf("DeleteReceivedBefore = %d, %v; want 60", n, err)
	}
	parts := partitions(t, s)
	if len(parts) != 3 || parts[0] != "events_p20260304" {
		t.Errorf("partitions after retention = %v; want 20260304 onwards", parts)
	}
	p, err := s.Lookup(ctx, audit.Query{Account: "111111111111", Region: "us-east-1", Category: audit.CategoryManagement, Limit: 100})
	if err != nil || len(p.Records) != len(kept) {
		t.Errorf("Lookup after retention = %d records, %v; want %d", len(p.Records), err, len(kept))
	}
	feed, err := s.ReadAppended(ctx, 0, 1000)
	if err != nil || len(feed) != len(kept) || feed[0].Seq != 61 {
		t.Errorf("ReadAppended after retention = %d records from seq %d, %v; want %d from 61", len(feed), feed[0].Seq, err, len(kept))
	}
	// Records whose partition was dropped may come back.
	if res, err := s.Append(ctx, first); err != nil || res.Inserted != len(first) {
		t.Errorf("re-appending a dropped day's records = %+v, %v; want %d inserted", res, err, len(first))
	}
}

// openNodes opens n stores on one new test database: n nodes of a
// cluster. The test's cleanup closes them.
func openNodes(t *testing.T, n int) []*Store {
	t.Helper()
	dsn := pgtest.Database(t)
	var nodes []*Store
	for range n {
		s, err := Open(context.Background(), dsn, Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		nodes = append(nodes, s)
	}
	return nodes
}

// Two stores on one database are two nodes: appends of overlapping
// batches from both, at once, store each record once, and the feed's
// sequence numbers are those of the commits, with no gap and no repeat.
func TestTwoNodesAppendAtOnce(t *testing.T) {
	ctx := context.Background()
	nodes := openNodes(t, 2)
	recs := storetest.NewGen(2, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)).Records(600)
	var wg sync.WaitGroup
	var mu sync.Mutex
	inserted := 0
	for i := range 12 {
		wg.Go(func() {
			// Each batch overlaps the next one by half.
			b := recs[i*50 : min(len(recs), i*50+100)]
			res, err := nodes[i%2].Append(ctx, b)
			if err != nil {
				t.Errorf("Append: %v", err)
				return
			}
			mu.Lock()
			inserted += res.Inserted
			mu.Unlock()
		})
	}
	wg.Wait()
	if inserted != len(recs) {
		t.Errorf("inserted %d records in all; want %d", inserted, len(recs))
	}
	feed, err := nodes[1].ReadAppended(ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	if len(feed) != len(recs) {
		t.Fatalf("feed has %d records; want %d", len(feed), len(recs))
	}
	for i, a := range feed {
		if a.Seq != int64(i+1) {
			t.Fatalf("feed[%d].Seq = %d; want %d (no gap, no repeat)", i, a.Seq, i+1)
		}
	}
}
