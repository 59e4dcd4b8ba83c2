package duckdb

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cairn-audit/cairn/internal/lake/engine"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// loadRows is a load's batch: more rows than the journal takes.
func loadRows(call int) []engine.Row { return groupRows(call, journalRows+1) }

// TestWritesBesideALoad: while a load's transaction is in progress (it
// holds the write lock shared, as Insert does for a load's batch), the
// feed's insert, the journal's writer and another load's transaction all
// run and commit: none waits for the load's transaction. Until session 22
// the feed's insert and the journal's writer took the lock alone, waited
// for the load's transaction, and held off the next load transaction
// meanwhile (sync.RWMutex lets no reader in past a waiting writer): a
// load's two appenders took turns.
func TestWritesBesideALoad(t *testing.T) {
	d := openTemp(t, Options{})
	ctx := context.Background()

	d.wmu.RLock() // a load's transaction in progress
	var release sync.Once
	unlock := func() { release.Do(d.wmu.RUnlock) }
	defer unlock() // before Close, when the wait fails
	var done atomic.Int32
	errs := make(chan error, 3)
	run := func(f func() error) {
		go func() {
			errs <- f()
			done.Add(1)
		}()
	}
	run(func() error { return d.Insert(ctx, groupRows(0, 5), 7) }) // the feed's
	run(func() error {                                             // PutAuditEvents' call, then the writer's transaction
		if err := d.Insert(ctx, groupRows(1, 3), 0); err != nil {
			return err
		}
		return d.Flush(ctx)
	})
	run(func() error { return d.Insert(ctx, loadRows(2), 0) }) // the load's next
	testwait.Until(t, "the feed's insert, the journal's writer and a load's next transaction beside a load's transaction in progress", func() bool {
		return done.Load() == 3
	})
	unlock()
	for range 3 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if got, want := storedByCall(t, d, 3), []int{5, 3, journalRows + 1}; got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("rows stored by call %v; want %v", got, want)
	}
	if pos, err := d.Position(ctx); err != nil || pos != 7 {
		t.Errorf("feed position %d (%v); want 7", pos, err)
	}
}

// TestPositionsBesideLoads: the feed's inserts (each recording the feed
// position), the journal's writer (recording journal_seq) and two
// appenders' load transactions, all at once and repeatedly: DuckDB raises
// no write-write conflict on lake_meta's rows, every write commits, the
// positions end at the last ones written (monotonic), and a restart
// replays nothing twice.
func TestPositionsBesideLoads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lake.duckdb")
	d, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const rounds = 6
	// Calls: 0..rounds-1 the feed's, rounds..2*rounds-1 the journal's,
	// then 2*rounds loads (two appenders).
	var wg sync.WaitGroup
	fail := func(what string, err error) {
		if err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
	wg.Go(func() {
		for i := range rounds {
			fail("feed insert", d.Insert(ctx, groupRows(i, 3), int64(i+1)))
		}
	})
	wg.Go(func() {
		for i := range rounds {
			fail("journaled insert", d.Insert(ctx, groupRows(rounds+i, 4), 0))
			fail("journal flush", d.Flush(ctx))
		}
	})
	for a := range 2 {
		wg.Go(func() {
			for i := range rounds {
				fail("load", d.Insert(ctx, loadRows(2*rounds+2*i+a), 0))
			}
		})
	}
	wg.Wait()
	check := func(d *DB) {
		t.Helper()
		got := storedByCall(t, d, 4*rounds)
		for c, n := range got {
			want := map[bool]int{true: 3, false: 4}[c < rounds]
			if c >= 2*rounds {
				want = journalRows + 1
			}
			if n != want {
				t.Errorf("call %d: %d rows stored; want %d", c, n, want)
			}
		}
		if pos, err := d.Position(ctx); err != nil || pos != rounds {
			t.Errorf("feed position %d (%v); want %d", pos, err, rounds)
		}
		var seq int64
		if err := d.db.QueryRow(`SELECT v FROM lake_meta WHERE k = ?`, journalSeqKey).Scan(&seq); err != nil || seq != 4*rounds {
			t.Errorf("journal_seq %d (%v); want %d", seq, err, 4*rounds)
		}
	}
	check(d)
	d.crash()
	if d, err = Open(path, Options{}); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	check(d)
}
