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
	for n := range 6 {
		if b := LoadBatchOf(n); b <= 0 || duckdb.RowGroupSize%b != 0 {
			t.Errorf("LoadBatchOf(%d) = %d; want a divisor of DuckDB's row group (%d)", n, b, duckdb.RowGroupSize)
		}
	}
	if got, want := LoadBatchOf(2), LoadBatch/2; got != want {
		t.Errorf("LoadBatchOf(2) = %d; want %d (two Appends hold three batches at once)", got, want)
	}
}
