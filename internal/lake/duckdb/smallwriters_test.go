package duckdb

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// TestSmallWritersBesideALoad holds a load's transaction open (its rows
// appended, not committed, with the write lock shared as Insert holds it
// for a load's batch) and checks that the small writers do not wait for
// it: the feed's Insert (rows and the feed position in one transaction),
// a journaled call and the journal's writer (Flush) each complete while
// the load's transaction is open, and once it commits every row is
// stored once, the feed position is the one recorded, and the journal's
// rows are not applied twice after a reopen.
func TestSmallWritersBesideALoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lake.duckdb")
	d, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	load := groupRows(0, journalRows+1)

	// The load's transaction, open.
	d.wmu.RLock()
	conn, err := d.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `BEGIN TRANSACTION`); err != nil {
		t.Fatal(err)
	}
	if err := appendRows(conn, load); err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	go func() {
		if err := d.Insert(ctx, groupRows(1, 10), 42); err != nil { // the feed's
			done <- err
			return
		}
		if err := d.Insert(ctx, groupRows(2, 10), 0); err != nil { // a journaled call
			done <- err
			return
		}
		done <- d.Flush(ctx) // the journal's writer
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the small writers waited for the load's open transaction")
	}

	if _, err := conn.ExecContext(ctx, `COMMIT`); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	d.wmu.RUnlock()

	check := func(d *DB) {
		t.Helper()
		if got := storedByCall(t, d, 3); got[0] != len(load) || got[1] != 10 || got[2] != 10 {
			t.Errorf("stored by writer %v; want [%d 10 10]", got, len(load))
		}
		if pos, err := d.Position(ctx); err != nil || pos != 42 {
			t.Errorf("feed position %d, %v; want 42", pos, err)
		}
	}
	check(d)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	check(d)
}
