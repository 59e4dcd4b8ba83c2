package duckdb

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

// AppendEach tells per record whether it was inserted: false for a record
// stored before and for a repeat within the batch (the first copy wins),
// in the order given; Append's counts agree.
func TestAppendEach(t *testing.T) {
	st, err := Open(filepath.Join(t.TempDir(), "events.duckdb"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	g := storetest.NewGen(3, time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC))
	a, b, c, d := g.Record(storetest.Spec{}), g.Record(storetest.Spec{}), g.Record(storetest.Spec{}), g.Record(storetest.Spec{})
	if got, err := st.AppendEach(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("AppendEach(nil) = %v, %v; want nothing", got, err)
	}
	got, err := st.AppendEach(ctx, []audit.Record{a, b})
	if err != nil || !slices.Equal(got, []bool{true, true}) {
		t.Fatalf("AppendEach(a, b) = %v, %v; want [true true]", got, err)
	}
	got, err = st.AppendEach(ctx, []audit.Record{c, a, c, d, b, d})
	if want := []bool{true, false, false, true, false, false}; err != nil || !slices.Equal(got, want) {
		t.Errorf("AppendEach(c, a, c, d, b, d) = %v, %v; want %v", got, err, want)
	}
	got, err = st.AppendEach(ctx, []audit.Record{d, c})
	if want := []bool{false, false}; err != nil || !slices.Equal(got, want) {
		t.Errorf("AppendEach of stored records = %v, %v; want %v", got, err, want)
	}
	res, err := st.Append(ctx, []audit.Record{a, g.Record(storetest.Spec{})})
	if err != nil || res.Inserted != 1 || res.Duplicates != 1 {
		t.Errorf("Append = %+v, %v; want 1 inserted, 1 duplicate", res, err)
	}
}
