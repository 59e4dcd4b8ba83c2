package lake

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/lake/duckdb"
	"github.com/cairn-audit/cairn/internal/lake/engine"
)

// loadRecord is a record of account with eventID id.
func loadRecord(t *testing.T, account, id string) audit.Record {
	t.Helper()
	r, err := audit.Extract(fmt.Appendf(nil, `{"eventVersion":"1.09","eventTime":"2026-01-02T03:04:05Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"us-east-1","eventID":"%s","recipientAccountId":"%s"}`, id, account))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// countStored is the number of events, and of distinct eventIDs, in store.
func countStored(t *testing.T, l *Lake, store string) (n, distinct int) {
	t.Helper()
	db := l.eng.(interface{ SQL() *sql.DB }).SQL()
	if err := db.QueryRow(`SELECT count(*), count(DISTINCT eventID) FROM events WHERE eds_id = ?`, store).Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	return n, distinct
}

// lakeWithStore opens a Lake in a temporary dir (closed at the test's
// end) with one event data store of account acct.
func lakeWithStore(t *testing.T, acct, name string) (*Lake, EventDataStore) {
	t.Helper()
	l, err := openTest(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s, err := l.CreateEventDataStore(context.Background(), audit.Principal{AccountID: acct, Region: "us-east-1"}, CreateStoreRequest{Name: ptr(name)})
	if err != nil {
		t.Fatal(err)
	}
	return l, s
}

// TestSinkDuplicates: a record is stored once whether it repeats within a
// load (in one call or two), across loads, or is already in the store:
// the seen set (idSet) answers each repeat as a duplicate.
func TestSinkDuplicates(t *testing.T) {
	const acct = "111111111111"
	ctx := context.Background()
	l, s := lakeWithStore(t, acct, "dups")
	recs := func(ids ...string) []audit.Record {
		var out []audit.Record
		for _, id := range ids {
			out = append(out, loadRecord(t, acct, id))
		}
		return out
	}
	load := func(calls ...[]audit.Record) (inserted int) {
		t.Helper()
		sink, err := l.NewSink(ctx, acct, []string{s.ID})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range calls {
			res, _, err := sink.AppendReport(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			inserted += res.Inserted
		}
		if err := sink.Finish(ctx); err != nil {
			t.Fatal(err)
		}
		return inserted
	}
	if n := load(recs("a", "b", "a"), recs("b", "c")); n != 3 {
		t.Errorf("first load inserted %d; want 3 (a, b, c; a and b repeated within it)", n)
	}
	if n := load(recs("c", "d"), recs("a", "e", "d")); n != 2 {
		t.Errorf("second load inserted %d; want 2 (d, e; a and c in the store)", n)
	}
	if n, d := countStored(t, l, s.ID); n != 5 || d != 5 {
		t.Errorf("store holds %d events, %d distinct; want a-e once each", n, d)
	}
	// Another account's record of the same eventID is another key.
	sink, err := l.NewSink(ctx, acct, []string{s.ID})
	if err != nil {
		t.Fatal(err)
	}
	sink.AnyAccount = true
	if res, _, err := sink.AppendReport(ctx, []audit.Record{loadRecord(t, "222222222222", "a")}); err != nil || res.Inserted != 1 {
		t.Errorf("another account's eventID a: %+v, %v; want inserted", res, err)
	}
	if err := sink.Finish(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestLoadStreamYields: between a streamed load's calls its transaction
// stays open, and the load counts as in progress (the checkpoint policy
// waits, the feed yields) until Finish, which stores its records.
func TestLoadStreamYields(t *testing.T) {
	const acct = "111111111111"
	ctx := context.Background()
	l, s := lakeWithStore(t, acct, "yield")
	sink, err := l.NewSink(ctx, acct, []string{s.ID})
	if err != nil {
		t.Fatal(err)
	}
	l.fedAt.Store(l.opts.Now().UnixNano())
	if _, _, err := sink.AppendEachReport(ctx, []audit.Record{loadRecord(t, acct, "x"), loadRecord(t, acct, "y")}); err != nil {
		t.Fatal(err)
	}
	if l.loading.Load() == 0 || !l.feedYields(ctx) {
		t.Errorf("between a load's calls: loading %d, feed yields %v; want the load in progress", l.loading.Load(), l.feedYields(ctx))
	}
	if n, _ := countStored(t, l, s.ID); n != 0 {
		t.Errorf("%d events visible before the load's transaction committed; want 0", n)
	}
	if err := sink.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	if l.loading.Load() != 0 || len(l.loadStores) != 0 {
		t.Errorf("after Finish: loading %d, stores being loaded %v; want none", l.loading.Load(), l.loadStores)
	}
	if n, _ := countStored(t, l, s.ID); n != 2 {
		t.Errorf("after Finish: %d events; want 2", n)
	}
}

// failingLoads is a DuckDB engine whose loads fail their Append number
// failAt (counted over all loads; 0: none fail).
type failingLoads struct {
	*duckdb.DB
	failAt int64
	calls  atomic.Int64
}

var errInjected = errors.New("injected load failure")

func (e *failingLoads) BeginLoad() engine.Load {
	return &failingLoad{Load: e.DB.BeginLoad(), e: e}
}

type failingLoad struct {
	engine.Load
	e *failingLoads
}

func (f *failingLoad) Append(ctx context.Context, rows []engine.Row) error {
	if f.e.calls.Add(1) == f.e.failAt {
		return errInjected
	}
	return f.Load.Append(ctx, rows)
}

// TestLoadFailedMidwayReimported: a load of more than two row groups that
// fails mid-way (an Append's error, as a failed commit) fails the import
// and leaves the store with whole row groups committed before it; the
// same import again stores every record exactly once.
func TestLoadFailedMidwayReimported(t *testing.T) {
	const acct = "111111111111"
	ctx := context.Background()
	dir := t.TempDir()
	db, err := duckdb.Open(filepath.Join(dir, DBFile), duckdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	eng := &failingLoads{DB: db}
	l, err := Open(dir, Options{Engine: eng})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s, err := l.CreateEventDataStore(ctx, audit.Principal{AccountID: acct, Region: "us-east-1"}, CreateStoreRequest{Name: ptr("midway")})
	if err != nil {
		t.Fatal(err)
	}
	total := 3*duckdb.RowGroupSize + 1000
	var batches [][]audit.Record
	for i := 0; i < total; i += LoadBatch {
		var b []audit.Record
		for j := i; j < min(i+LoadBatch, total); j++ {
			b = append(b, loadRecord(t, acct, fmt.Sprintf("e-%07d", j)))
		}
		batches = append(batches, b)
	}
	run := func() error {
		sink, err := l.NewSink(ctx, acct, []string{s.ID})
		if err != nil {
			t.Fatal(err)
		}
		var err2 error
		for _, b := range batches {
			if _, _, err2 = sink.AppendEachReport(ctx, b); err2 != nil {
				break
			}
		}
		if err := sink.Finish(ctx); err2 == nil {
			err2 = err
		}
		return err2
	}
	eng.failAt = int64(len(batches)) - 3
	if err := run(); !errors.Is(err, errInjected) {
		t.Fatalf("the failing load: %v; want the injected failure", err)
	}
	n, d := countStored(t, l, s.ID)
	if n != d || n < duckdb.RowGroupSize || n >= total {
		t.Errorf("after the failed load: %d events (%d distinct); want some whole row groups, once each", n, d)
	}
	eng.failAt = 0
	if err := run(); err != nil {
		t.Fatal(err)
	}
	if n, d := countStored(t, l, s.ID); n != total || d != total {
		t.Errorf("after the re-import: %d events, %d distinct; want each of %d once", n, d, total)
	}
}

// TestLoadOneTransactionOpen: a load keeps one transaction open however
// many of the importer's appenders call at once (LoadAppenders), so that
// DuckDB holds one row group of it uncompressed, not one an appender
// (issue 15: a Lake load's RSS), and a load of less than a row group
// commits one partial transaction at Finish, not one an appender. With
// two open (session 23) this load committed two.
func TestLoadOneTransactionOpen(t *testing.T) {
	const (
		acct    = "111111111111"
		callers = 4
		calls   = 2
		per     = 2000
	)
	ctx := context.Background()
	l, s := lakeWithStore(t, acct, "one")
	eng := l.eng.(interface{ Inserts() int64 })
	var batches [callers][calls][]audit.Record
	for c := range callers {
		for k := range calls {
			for i := range per {
				batches[c][k] = append(batches[c][k], loadRecord(t, acct, fmt.Sprintf("e-%d-%d-%d", c, k, i)))
			}
		}
	}
	sink, err := l.NewSink(ctx, acct, []string{s.ID})
	if err != nil {
		t.Fatal(err)
	}
	before := eng.Inserts()
	start := make(chan struct{})
	errs := make(chan error, callers)
	for c := range callers {
		go func() {
			<-start
			for k := range calls {
				if _, _, err := sink.AppendEachReport(ctx, batches[c][k]); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	close(start)
	for range callers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := sink.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	if got := eng.Inserts() - before; got != 1 {
		t.Errorf("a load of %d records from %d concurrent callers committed %d transactions; want 1 (one open at a time)", callers*calls*per, callers, got)
	}
	if n, d := countStored(t, l, s.ID); n != callers*calls*per || d != n {
		t.Errorf("store holds %d events, %d distinct; want %d once each", n, d, callers*calls*per)
	}
}
