package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cairn-audit/cairn/internal/lake/engine"
)

// TestRowGroupSize: RowGroupSize is DuckDB's row group, and a load's
// transactions of that many rows each fill one, which the table keeps as
// it is: no partial row group for a checkpoint to merge and rewrite.
func TestRowGroupSize(t *testing.T) {
	d := openTemp(t, Options{Threads: 1})
	ctx := context.Background()
	for b := range 2 {
		rows := make([]engine.Row, RowGroupSize)
		for i := range rows {
			rows[i] = engine.Row{Store: "s", Raw: fmt.Appendf(nil, `{"eventVersion":"1.08","eventID":"e-%d-%d","eventTime":"2025-01-02T03:04:05Z","eventName":"GetObject","recipientAccountId":"111111111111"}`, b, i)}
		}
		if err := d.Insert(ctx, rows, 0); err != nil {
			t.Fatal(err)
		}
	}
	groups := rowGroups(t, d)
	if len(groups) != 2 || groups[0] != RowGroupSize || groups[1] != RowGroupSize {
		t.Errorf("row groups of %v rows after two transactions of %d; want two full ones", groups, RowGroupSize)
	}
}

// TestLoadWritesToTheFile: a load's transaction of RowGroupSize rows is
// written into the database file as it is appended, and its COMMIT logs
// only where the rows are: the write-ahead log stays small. That holds
// only because the file is attached with ROW_GROUP_SIZE RowGroupSize
// (openDB): DuckDB writes a transaction's rows directly when they fill
// at least one of the table's row groups, and logs them row by row
// otherwise.
func TestLoadWritesToTheFile(t *testing.T) {
	d := openTemp(t, Options{Threads: 1})
	ctx := context.Background()
	rows := streamRows("s", "e", RowGroupSize)
	size := 0
	for _, r := range rows {
		size += len(r.Raw)
	}
	ld := d.BeginLoad()
	if err := ld.Append(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if err := ld.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	if got := d.LogSize(); got > int64(size/20) {
		t.Errorf("write-ahead log of %d bytes after a load of %d rows (%d bytes of JSON); want the rows in the file, not the log", got, len(rows), size)
	}
}

// TestOlderRowGroupsKept: a lake.duckdb written with DuckDB's default row
// group (122,880 rows, cairn before session 26) keeps its row groups when
// opened, and what is stored from then on comes in row groups of
// RowGroupSize: the size is the ATTACH's, not the file's, so it applies at
// every open.
func TestOlderRowGroupsKept(t *testing.T) {
	const older = 122880
	path := filepath.Join(t.TempDir(), "lake.duckdb")
	old, err := sql.Open("duckdb", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Exec(eventsDDL()); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Exec(`INSERT INTO main.events (eds_id, "eventID", "eventJson") SELECT 's', 'old-' || i, '{}' FROM range(` + fmt.Sprint(older) + `) t(i)`); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Exec(`CHECKPOINT`); err != nil {
		t.Fatal(err)
	}
	old.Close()
	ctx := context.Background()
	for round := range 2 {
		d, err := Open(path, Options{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Insert(ctx, streamRows("s", fmt.Sprintf("new%d", round), RowGroupSize), 0); err != nil {
			t.Fatal(err)
		}
		if err := d.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		want := []int64{older}
		for range round + 1 {
			want = append(want, RowGroupSize)
		}
		if got := rowGroups(t, d); !slices.Equal(got, want) {
			t.Errorf("open %d: row groups %v; want %v", round, got, want)
		}
		var n int
		if err := d.db.QueryRow(`SELECT count(DISTINCT eventID) FROM events`).Scan(&n); err != nil || n != older+(round+1)*RowGroupSize {
			t.Errorf("open %d: %d distinct events (%v); want %d", round, n, err, older+(round+1)*RowGroupSize)
		}
		d.Close()
	}
}
