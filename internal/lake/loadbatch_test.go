package lake

import (
	"testing"

	"github.com/cairn-audit/cairn/internal/lake/duckdb"
)

// TestLoadBatchIsRowGroups: a load's batches divide a DuckDB row group,
// so that a load of records the store takes splits no batch at the
// boundary of its transactions, which are whole row groups (duckdb.Load;
// TestLoadStreamsRowGroups checks what that gives).
func TestLoadBatchIsRowGroups(t *testing.T) {
	if duckdb.RowGroupSize%LoadBatch != 0 {
		t.Errorf("LoadBatch = %d; want a divisor of DuckDB's row group (%d)", LoadBatch, duckdb.RowGroupSize)
	}
}
