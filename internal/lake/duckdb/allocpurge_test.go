package duckdb

import (
	"context"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/lake/engine"
)

// TestLoadPurgesTheAllocator: while a load is in progress DuckDB's
// allocator is purged on a ticker, from the first BeginLoad until the last
// of the loads in progress has finished, and not after (issue 15: a load's
// freed pages; allocatorPurger).
func TestLoadPurgesTheAllocator(t *testing.T) {
	d := openTemp(t, Options{})
	d.purgeEvery = 2 * time.Millisecond
	ctx := context.Background()
	var rows []engine.Row
	for _, rr := range audittest.RealRecords(t) {
		rows = append(rows, engine.Row{Store: "s", Raw: rr.Raw})
	}
	if !allocatorPurgeable {
		ld := d.BeginLoad()
		if err := ld.Append(ctx, rows); err != nil {
			t.Fatal(err)
		}
		if err := ld.Finish(ctx); err != nil {
			t.Fatal(err)
		}
		if n := d.purges.Load(); n != 0 {
			t.Fatalf("%d purges where the allocator cannot be reached; want 0", n)
		}
		return
	}
	if !purgeAllocator() {
		t.Fatal("purgeAllocator() = false; want jemalloc's arena.4096.purge to succeed")
	}
	// purged waits (up to a minute: a loaded machine) for the purges to
	// pass n.
	purged := func(n int64) {
		t.Helper()
		for end := time.Now().Add(time.Minute); d.purges.Load() <= n; time.Sleep(time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("purges stayed at %d during a load", d.purges.Load())
			}
		}
	}
	if n := d.purges.Load(); n != 0 {
		t.Fatalf("%d purges before any load; want 0", n)
	}
	a, b := d.BeginLoad(), d.BeginLoad()
	if err := a.Append(ctx, rows[:len(rows)/2]); err != nil {
		t.Fatal(err)
	}
	if err := b.Append(ctx, rows[len(rows)/2:]); err != nil {
		t.Fatal(err)
	}
	purged(0)
	if err := a.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	// b is still in progress: the purges go on.
	purged(d.purges.Load())
	if err := b.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	n := d.purges.Load()
	time.Sleep(50 * time.Millisecond) // 25 of purgeEvery
	if m := d.purges.Load(); m != n {
		t.Fatalf("purges went on after the last load finished: %d, then %d", n, m)
	}
	var stored int
	if err := d.db.QueryRowContext(ctx, `SELECT count(*) FROM events`).Scan(&stored); err != nil || stored != len(rows) {
		t.Fatalf("stored %d of %d (%v)", stored, len(rows), err)
	}
	// A load begun again purges again; Close ends a load never finished.
	d.BeginLoad()
	purged(n)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	n = d.purges.Load()
	time.Sleep(50 * time.Millisecond)
	if m := d.purges.Load(); m != n {
		t.Fatalf("purges went on after Close: %d, then %d", n, m)
	}
}
