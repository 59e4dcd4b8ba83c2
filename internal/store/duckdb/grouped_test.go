package duckdb

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

// stageGrouped stages batches as the importer does with a GroupingSink:
// reserved one after the other, appended concurrently (two at a time),
// EndGroup after the last; it returns each batch's answer once every
// batch's transaction committed, and the first error of a commit.
func stageGrouped(t *testing.T, st *Store, batches [][]audit.Record) ([][]bool, error) {
	t.Helper()
	ctx := context.Background()
	got := make([][]bool, len(batches))
	committed := make([]func() error, len(batches))
	var wg sync.WaitGroup
	slots := make(chan struct{}, 2)
	for i, b := range batches {
		commit, err := st.StageGrouped(b)(ctx)
		if err != nil {
			t.Fatal(err)
		}
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			ins, c, err := commit(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			got[i], committed[i] = ins, c
		})
	}
	wg.Wait()
	st.EndGroup()
	var first error
	for _, c := range committed {
		if c == nil {
			continue
		}
		if err := c(); err != nil && first == nil {
			first = err
		}
	}
	return got, first
}

// TestGroupedImportWritesRowGroupsToTheFile: an import's batches staged
// in groups (StageGrouped) of more than DuckDB's row group have their
// events rows written straight into the database file (persistent
// segments before any checkpoint), not held in DuckDB's memory and its
// log until Close's checkpoint (one transaction a batch, StageEach, holds
// them all there); every record comes back byte for byte, once, after a
// reopen, and importing again finds them all.
func TestGroupedImportWritesRowGroupsToTheFile(t *testing.T) {
	if testing.Short() {
		t.Skip("imports over a row group of records")
	}
	sh := storetest.NewShapes(t, 33)
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	const batch = 10240
	n := txRowGroup + 3*batch + 77
	var batches [][]audit.Record
	for from := 0; from < n; from += batch {
		k := min(batch, n-from)
		t0 := base.Add(time.Duration(from) * time.Minute)
		batches = append(batches, sh.Records(k, t0, t0.Add(time.Duration(k)*time.Minute), "111111111111", "eu-west-1"))
	}
	path := filepath.Join(t.TempDir(), "events.duckdb")
	st, err := Open(path, Options{Cold: true})
	if err != nil {
		t.Fatal(err)
	}
	st.BeginImport()
	got, err := stageGrouped(t, st, batches)
	if err != nil {
		t.Fatal(err)
	}
	for i, ins := range got {
		if len(ins) != len(batches[i]) || slices.Contains(ins, false) {
			t.Fatalf("batch %d: inserted %d of %d", i, len(ins), len(batches[i]))
		}
	}
	if last, err := st.LastSeq(context.Background()); err != nil || last != int64(n) {
		t.Fatalf("LastSeq = %d, %v; want %d", last, err, n)
	}
	var inFile, all int64
	if err := st.db.QueryRow(`SELECT coalesce(sum(count) FILTER (WHERE persistent), 0), sum(count)
		FROM pragma_storage_info('events') WHERE column_id = 0 AND segment_type <> 'VALIDITY'`).Scan(&inFile, &all); err != nil {
		t.Fatal(err)
	}
	t.Logf("before Close: %d of %d rows in the file, WAL %d bytes", inFile, all, st.walSize())
	if inFile < txRowGroup {
		t.Errorf("%d of %d rows in the file before a checkpoint; want at least a row group (%d)", inFile, all, txRowGroup)
	}
	if !st.InOrder() {
		t.Error("an import in time order: not InOrder")
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st, err = Open(path, Options{Cold: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	want := map[string][]byte{}
	for _, b := range batches {
		for _, r := range b {
			want[r.EventID] = r.Raw
		}
	}
	app, err := st.ReadAppended(context.Background(), 0, n+10)
	if err != nil {
		t.Fatal(err)
	}
	if len(app) != n {
		t.Fatalf("read back %d records; want %d", len(app), n)
	}
	for _, a := range app {
		raw, ok := want[a.Record.EventID]
		if !ok || !bytes.Equal(raw, a.Record.Raw) {
			t.Fatalf("record %s (seq %d) read back differs or twice", a.Record.EventID, a.Seq)
		}
		delete(want, a.Record.EventID)
	}

	// Again: every record a duplicate.
	st.BeginImport()
	got, err = stageGrouped(t, st, batches)
	if err != nil {
		t.Fatal(err)
	}
	for i, ins := range got {
		if slices.Contains(ins, true) {
			t.Fatalf("importing again: batch %d inserted records", i)
		}
	}
}
