package lake

import (
	"testing"

	"github.com/cairn-audit/cairn/internal/lake/duckdb"
)

// TestLoadBatchIsRowGroups: a load's transaction is whole DuckDB row
// groups (TestRowGroupSize in lake/duckdb checks what that gives; the
// importer makes every batch but the last exactly LoadBatch,
// TestBatchesExact). 131,072, just over one, left a partial row group
// after each transaction, which the load's checkpoint rewrote.
func TestLoadBatchIsRowGroups(t *testing.T) {
	if LoadBatch%duckdb.RowGroupSize != 0 {
		t.Errorf("LoadBatch = %d; want a multiple of DuckDB's row group (%d)", LoadBatch, duckdb.RowGroupSize)
	}
}
