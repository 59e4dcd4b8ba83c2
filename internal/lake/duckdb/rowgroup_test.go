package duckdb

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/cairn-audit/cairn/internal/lake/engine"
)

// TestRowGroupSize: RowGroupSize is DuckDB's row group, and a load's
// transactions of that many rows each fill one, which the table keeps as
// it is: no partial row group for a checkpoint to merge and rewrite.
func TestRowGroupSize(t *testing.T) {
	d, err := Open(filepath.Join(t.TempDir(), "lake.duckdb"), Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
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
	q := `SELECT row_group_id, sum(count) FROM pragma_storage_info('events') WHERE column_name = 'eventID' AND segment_type = 'VARCHAR' GROUP BY ALL ORDER BY 1`
	rs, err := d.db.QueryContext(ctx, q)
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
	if len(groups) != 2 || groups[0] != RowGroupSize || groups[1] != RowGroupSize {
		t.Errorf("row groups of %v rows after two transactions of %d; want two full ones", groups, RowGroupSize)
	}
}
