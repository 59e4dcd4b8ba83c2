package duckdb

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/lake/engine"
)

// crash ends d as a crash would: the writer stops without inserting what
// waits and the journal is left as it is (its segment neither sealed nor
// deleted); DuckDB keeps what it committed.
func (d *DB) crash() {
	close(d.stopw)
	<-d.writerDone
	d.db.Close()
}

// countByCall returns how many rows of store "g" each call (groupRows)
// has in the table, and the total.
func countByCall(t *testing.T, d *DB, calls int) ([]int, int) {
	t.Helper()
	got := storedByCall(t, d, calls)
	var n int
	if err := d.SQL().QueryRow(`SELECT count(*) FROM events WHERE eds_id = 'g'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return got, n
}

// TestJournalReplay: rows acknowledged from the journal survive a crash
// whether or not the writer had moved them into the table, and after the
// restart each is in the table exactly once: the ones the writer had
// inserted are skipped by their sequence number, the others inserted. New
// rows after the restart continue the sequence, and a second crash loses
// nothing either.
func TestJournalReplay(t *testing.T) {
	for _, tc := range []struct {
		name    string
		flushed int // calls moved into the table before the crash
	}{
		{"none flushed", 0},
		{"some flushed", 3},
		{"all flushed", 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "lake.duckdb")
			d, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			const calls = 6
			for c := range calls {
				if err := d.Insert(ctx, groupRows(c, 7), 0); err != nil {
					t.Fatal(err)
				}
				if c+1 == tc.flushed {
					if err := d.Flush(ctx); err != nil {
						t.Fatal(err)
					}
				}
			}
			if got, want := d.Pending(), (calls-tc.flushed)*7; got != want {
				t.Errorf("%d rows waiting before the crash; want %d", got, want)
			}
			d.crash()

			d, err = Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if d.Pending() != 0 {
				t.Errorf("%d rows waiting after the replay; want 0", d.Pending())
			}
			// The replay's rows are in the table (read without Flush).
			var n int
			if err := d.db.QueryRow(`SELECT count(*) FROM events WHERE eds_id = 'g'`).Scan(&n); err != nil || n != calls*7 {
				t.Fatalf("%d rows after the replay (%v); want %d", n, err, calls*7)
			}
			// More calls, and a second crash before the writer ran.
			for c := calls; c < calls+2; c++ {
				if err := d.Insert(ctx, groupRows(c, 7), 0); err != nil {
					t.Fatal(err)
				}
			}
			d.crash()
			d, err = Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			got, total := countByCall(t, d, calls+2)
			for c, n := range got {
				if n != 7 {
					t.Errorf("call %d: %d rows in the table; want 7", c, n)
				}
			}
			if total != (calls+2)*7 {
				t.Errorf("%d rows in the table; want %d", total, (calls+2)*7)
			}
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			// A clean close leaves no segment to replay.
			ents, err := os.ReadDir(journalDir(path))
			if err != nil {
				t.Fatal(err)
			}
			if len(ents) != 0 {
				t.Errorf("journal after Close holds %d files; want none", len(ents))
			}
		})
	}
}

// TestJournalVisibility: a row acknowledged by Insert is seen by the next
// query (Run), by EventIDs and by Delete, without waiting for the writer.
func TestJournalVisibility(t *testing.T) {
	d := openTemp(t, Options{})
	ctx := context.Background()
	raw := []byte(`{"eventID":"e1","recipientAccountId":"111111111111","eventName":"Op","eventTime":"2026-12-03T10:00:00Z"}`)
	if err := d.Insert(ctx, []engine.Row{{Store: "v", Raw: raw}}, 0); err != nil {
		t.Fatal(err)
	}
	if d.Pending() != 1 {
		t.Fatalf("%d rows waiting; want the row journaled and waiting", d.Pending())
	}
	sink := &countSink{}
	if _, err := d.Run(ctx, engine.Statement{SQL: `SELECT eventName FROM ` + engine.TableName("v"), Stores: []string{"v"}, MaxBytes: 1 << 20}, sink); err != nil {
		t.Fatal(err)
	}
	if sink.rows != 1 {
		t.Errorf("query saw %d rows; want 1", sink.rows)
	}
	if err := d.Insert(ctx, []engine.Row{{Store: "v", Raw: []byte(`{"eventID":"e2","recipientAccountId":"111111111111"}`)}}, 0); err != nil {
		t.Fatal(err)
	}
	ids, err := d.EventIDs(ctx, "v")
	if err != nil {
		t.Fatal(err)
	}
	if !ids["111111111111/e1"] || !ids["111111111111/e2"] {
		t.Errorf("EventIDs = %v; want e1 and e2", ids)
	}
	if err := d.Insert(ctx, []engine.Row{{Store: "v", Raw: raw}}, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, "v", time.Time{}); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := d.db.QueryRow(`SELECT count(*) FROM events WHERE eds_id = 'v'`).Scan(&n); err != nil || n != 0 || d.Pending() != 0 {
		t.Errorf("after Delete: %d rows in the table, %d waiting (%v); want none", n, d.Pending(), err)
	}
}

// countSink counts a run's rows.
type countSink struct{ rows int }

func (s *countSink) SetColumns([]string) error { return nil }
func (s *countSink) AddRow([]*string) error    { s.rows++; return nil }

// TestJournalBackpressure: past maxPending waiting rows, Insert waits for
// the writer instead of queueing more; every row ends in the table.
func TestJournalBackpressure(t *testing.T) {
	d := openTemp(t, Options{})
	d.lim.flushRows, d.lim.maxPending = 2000, 5000
	ctx := context.Background()
	const per = 1000
	calls := d.lim.maxPending/per + 4
	peak := 0
	for c := range calls {
		rows := make([]engine.Row, per)
		for i := range rows {
			rows[i] = engine.Row{Store: "b", Raw: fmt.Appendf(nil, `{"eventID":"%d-%d"}`, c, i)}
		}
		if err := d.Insert(ctx, rows, 0); err != nil {
			t.Fatal(err)
		}
		peak = max(peak, d.Pending())
	}
	if peak > d.lim.maxPending+per {
		t.Errorf("%d rows waited at most; want at most %d", peak, d.lim.maxPending+per)
	}
	var n int
	if err := d.SQL().QueryRow(`SELECT count(*) FROM events WHERE eds_id = 'b'`).Scan(&n); err != nil || n != calls*per {
		t.Errorf("%d rows in the table (%v); want %d", n, err, calls*per)
	}
}

// TestJournalBacklogged: Backlogged turns true once maxPending rows wait
// for the writer, and false again once the writer has moved them into the
// table; every row is there.
func TestJournalBacklogged(t *testing.T) {
	d := openTemp(t, Options{})
	// The writer flushes only when asked.
	d.lim.flushRows, d.lim.flushDelay, d.lim.maxPending = 1<<30, time.Hour, 3000
	ctx := context.Background()
	for c := range 3 {
		if d.Backlogged() {
			t.Fatalf("backlogged with %d rows waiting; the bound is %d", d.Pending(), d.lim.maxPending)
		}
		if err := d.Insert(ctx, groupRows(c, 1000), 0); err != nil {
			t.Fatal(err)
		}
	}
	if !d.Backlogged() {
		t.Fatalf("not backlogged with %d rows waiting; the bound is %d", d.Pending(), d.lim.maxPending)
	}
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if d.Backlogged() || d.Pending() != 0 {
		t.Errorf("after Flush: backlogged %v, %d rows waiting", d.Backlogged(), d.Pending())
	}
	if _, n := countByCall(t, d, 3); n != 3000 {
		t.Errorf("%d rows in the table; want 3000", n)
	}
}

// TestJournalDeadlineAfterFlush: rows journaled while the writer's
// transaction runs wait for the writer from when that transaction took its
// rows, not from when the first of the rows it took came: with that stale
// deadline (already past) the writer started its next transaction at once,
// however few rows waited, and under a steady stream every transaction
// held only what came during the one before (session 23: 29k-98k rows, each
// then rewritten by a checkpoint instead of written once as row groups).
func TestJournalDeadlineAfterFlush(t *testing.T) {
	d := openTemp(t, Options{})
	// The writer flushes only when asked.
	d.lim.flushRows, d.lim.flushDelay = 1<<30, time.Hour
	ctx := context.Background()
	for attempt := 0; ; attempt++ {
		if err := d.Insert(ctx, groupRows(2*attempt, 100), 0); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // the first row's time before the flush's
		start := time.Now()
		// The transaction waits for the write lock after taking the
		// waiting rows; rows journaled meanwhile stay waiting.
		d.wmu.Lock()
		done := make(chan error)
		go func() { done <- d.Flush(ctx) }()
		time.Sleep(50 * time.Millisecond)
		if err := d.Insert(ctx, groupRows(2*attempt+1, 100), 0); err != nil {
			t.Fatal(err)
		}
		d.wmu.Unlock()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if d.Pending() == 0 {
			// The flush took the second rows too (it had not begun
			// when they came): try again.
			if attempt == 10 {
				t.Fatal("the flush never began before the second insert")
			}
			continue
		}
		d.pmu.Lock()
		since := d.pendSince
		d.pmu.Unlock()
		if since.Before(start) {
			t.Errorf("rows journaled during a flush wait from %v, before the flush began (%v)", since.Format(time.StampMicro), start.Format(time.StampMicro))
		}
		break
	}
}

// TestBackloggedWithoutJournal: a database in memory has no journal and
// is never backlogged.
func TestBackloggedWithoutJournal(t *testing.T) {
	d, err := Open("", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Insert(context.Background(), groupRows(0, 10), 0); err != nil {
		t.Fatal(err)
	}
	if d.Backlogged() {
		t.Error("an in-memory database is backlogged")
	}
}

// EventIDs returns the account/eventID keys of store's events as a set
// (EachEventID), for tests.
func (d *DB) EventIDs(ctx context.Context, store string) (map[string]bool, error) {
	m := map[string]bool{}
	err := d.EachEventID(ctx, store, func(key []byte) { m[string(key)] = true })
	return m, err
}
