package duckdb

import "github.com/cairn-audit/cairn/internal/store/storetest"

// equateRecords compares records' bytes with bytes.Equal (go-cmp's own
// compare of a []byte took minutes under the race detector).
var equateRecords = storetest.EquateRecords
