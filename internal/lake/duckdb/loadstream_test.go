package duckdb

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/lake/engine"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// streamRows are n small records of store s, their eventIDs prefixed p.
func streamRows(s, p string, n int) []engine.Row {
	rows := make([]engine.Row, n)
	for i := range rows {
		rows[i] = engine.Row{Store: s, Raw: fmt.Appendf(nil, `{"eventVersion":"1.08","eventID":"%s-%d","eventTime":"2025-01-02T03:04:05Z","eventName":"GetObject","recipientAccountId":"111111111111"}`, p, i)}
	}
	return rows
}

// rowGroups returns the rows of each of the events table's row groups.
func rowGroups(t *testing.T, d *DB) []int64 {
	t.Helper()
	rs, err := d.db.Query(`SELECT row_group_id, sum(count) FROM pragma_storage_info('events') WHERE column_name = 'eventID' AND segment_type = 'VARCHAR' GROUP BY ALL ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var groups []int64
	for rs.Next() {
		var id, n int64
		if err := rs.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		groups = append(groups, n)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return groups
}

// TestLoadStreamsRowGroups: a load given in small batches by two
// concurrent appenders (taking turns with its one transaction; batches
// split at a transaction's boundary) stores every row once, in
// transactions of whole row groups but its last (Finish): the table's row
// groups are full but one.
func TestLoadStreamsRowGroups(t *testing.T) {
	d := openTemp(t, Options{Threads: 1})
	ctx := context.Background()
	all := streamRows("s", "e", 2*RowGroupSize+RowGroupSize/2+77)
	ld := d.BeginLoad()
	var batches [][]engine.Row
	for rest, i := all, 0; len(rest) > 0; i++ {
		n := min(len(rest), []int{15360, 10000, 7001}[i%3])
		batches = append(batches, rest[:n])
		rest = rest[n:]
	}
	appendConcurrently(t, ld, batches, 2)
	before := d.Inserts()
	if err := ld.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	if n := d.Inserts() - before; n != 1 {
		t.Errorf("Finish committed %d transactions; want the 1 left open", n)
	}
	var n, distinct int
	if err := d.db.QueryRow(`SELECT count(*), count(DISTINCT eventID) FROM events`).Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != len(all) || distinct != len(all) {
		t.Errorf("stored %d rows, %d distinct; want each of the %d once", n, distinct, len(all))
	}
	groups := rowGroups(t, d)
	partial := 0
	var sum int64
	for _, g := range groups {
		sum += g
		if g != RowGroupSize {
			partial++
		}
	}
	if sum != int64(len(all)) || partial > 1 || len(groups) < 2 {
		t.Errorf("row groups %v; want %d rows, all but at most 1 group of %d", groups, len(all), RowGroupSize)
	}
}

// TestLoadCheckpointBeside: a CHECKPOINT (or Delete) requested while a
// load holds an idle open transaction does not wait for the load's next
// Append or its Finish: it has the load commit that transaction and goes
// on (lockAlone). A load's transaction stays open while its next batch is
// read, so a slow source held the checkpoint off, and behind it every
// other account's writes (the journal's writer, the feed). The load then
// goes on, and Finish stores the rest.
func TestLoadCheckpointBeside(t *testing.T) {
	d := openTemp(t, Options{Threads: 1})
	ctx := context.Background()
	ld := d.BeginLoad()
	if err := ld.Append(ctx, streamRows("s", "a", 1000)); err != nil { // an open transaction, idle
		t.Fatal(err)
	}
	ckpt := make(chan error, 1)
	go func() { ckpt <- d.Checkpoint(ctx) }()
	select {
	case err := <-ckpt:
		if err != nil {
			t.Fatal(err)
		}
	case <-testwait.Context(t).Done():
		t.Fatal("the checkpoint waits for the load's idle transaction")
	}
	var n int
	if err := d.db.QueryRow(`SELECT count(DISTINCT eventID) FROM events`).Scan(&n); err != nil || n != 1000 {
		t.Errorf("after the checkpoint: %d rows (%v); want the 1000 its idle transaction held, committed", n, err)
	}
	for _, p := range []string{"b", "c"} {
		if err := ld.Append(ctx, streamRows("s", p, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	if err := ld.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.db.QueryRow(`SELECT count(DISTINCT eventID) FROM events`).Scan(&n); err != nil || n != 3000 {
		t.Errorf("stored %d distinct (%v); want 3000", n, err)
	}
}

// TestLoadOpensBesideAWaitingWriter: while a writer waits for the write
// lock without committing the load's transaction first (the journal's
// replay takes it so), concurrent Appends go on in the load's one open
// transaction (no deadlock: none waits for the lock while holding one),
// and once Finish commits it the writer has the lock.
func TestLoadOpensBesideAWaitingWriter(t *testing.T) {
	d := openTemp(t, Options{Threads: 1})
	ctx := context.Background()
	ld := d.BeginLoad()
	if err := ld.Append(ctx, streamRows("s", "a", 1000)); err != nil { // an open transaction, idle
		t.Fatal(err)
	}
	locked := make(chan struct{})
	go func() {
		d.wmu.Lock()
		d.wmu.Unlock()
		close(locked)
	}()
	for d.wmu.TryRLock() { // until the writer waits for the lock
		d.wmu.RUnlock()
		time.Sleep(time.Millisecond)
	}
	// Two Appends at once: they take the idle transaction in turn.
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, p := range []string{"b", "c"} {
		wg.Go(func() { errs <- ld.Append(ctx, streamRows("s", p, 1000)) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := ld.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-locked:
	case <-testwait.Context(t).Done():
		t.Fatal("the writer still waits after the load finished")
	}
	var n int
	if err := d.db.QueryRow(`SELECT count(DISTINCT eventID) FROM events`).Scan(&n); err != nil || n != 3000 {
		t.Errorf("stored %d distinct (%v); want 3000", n, err)
	}
}

// TestLoadDeleteBeside: one account's load, idle between its batches (its
// next file still being read), does not hold off another account's Delete
// of its own store (DeleteEventDataStore, retention): the Delete has the
// load commit what it appended and goes on; neither store loses a row.
func TestLoadDeleteBeside(t *testing.T) {
	d := openTemp(t, Options{Threads: 1})
	ctx := context.Background()
	if err := d.Insert(ctx, streamRows("theirs", "t", 500), 0); err != nil {
		t.Fatal(err)
	}
	ld := d.BeginLoad()
	if err := ld.Append(ctx, streamRows("mine", "m", 1000)); err != nil { // open, idle
		t.Fatal(err)
	}
	del := make(chan error, 1)
	go func() { del <- d.Delete(ctx, "theirs", time.Time{}) }()
	select {
	case err := <-del:
		if err != nil {
			t.Fatal(err)
		}
	case <-testwait.Context(t).Done():
		t.Fatal("another store's Delete waits for the load's idle transaction")
	}
	if err := ld.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	var mine, theirs int
	if err := d.db.QueryRow(`SELECT count(*) FILTER (WHERE eds_id = 'mine'), count(*) FILTER (WHERE eds_id = 'theirs') FROM events`).Scan(&mine, &theirs); err != nil {
		t.Fatal(err)
	}
	if mine != 1000 || theirs != 0 {
		t.Errorf("after the Delete and the load: %d rows of the load's store, %d of the deleted one; want 1000 and 0", mine, theirs)
	}
}
