package duckdb

import (
	"context"
	"fmt"
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
