package duckdb

import (
	"bytes"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// equateRecords is cmpopts.EquateEmpty with byte slices (every record's
// Raw) compared by bytes.Equal. go-cmp compares a []byte element by
// element through reflection and its diff search, which made comparing
// feeds with a 200 KiB record (TestBlobReferencesOfBefore) take 7 minutes
// under the race detector.
var equateRecords = gocmp.Options{
	cmpopts.EquateEmpty(),
	gocmp.FilterValues(func(a, b []byte) bool { return len(a) > 0 || len(b) > 0 }, gocmp.Comparer(bytes.Equal)),
}
