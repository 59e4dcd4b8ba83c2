package duckdb

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

// TestKeyFilterHoldsEveryKey: no key added is ever reported absent, and
// few others are reported present.
func TestKeyFilterHoldsEveryKey(t *testing.T) {
	f := newKeyFilter(100_000)
	for i := range uint64(100_000) {
		f.add(keyHash("123456789012", string(rune(i))+"-id"))
	}
	for i := range uint64(100_000) {
		if !f.has(keyHash("123456789012", string(rune(i))+"-id")) {
			t.Fatalf("key %d added but not held", i)
		}
	}
	fp := 0
	for i := range uint64(100_000) {
		if f.has(keyHash("210987654321", string(rune(i))+"-other")) {
			fp++
		}
	}
	if fp > 1_000 {
		t.Errorf("%d false positives in 100,000, want under 1%%", fp)
	}
}

// TestKeyFilterDuplicates: records stored before the filter existed (a
// reopened store), after it, and after it was rebuilt for passing its
// capacity are all found again: a second append of each stores nothing.
func TestKeyFilterDuplicates(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "events.duckdb")
	base := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	g := storetest.NewGen(3, base)
	batch := func(n int) []audit.Record {
		var recs []audit.Record
		for i := range n {
			recs = append(recs, g.Record(storetest.Spec{Time: base.Add(time.Duration(i) * time.Minute)}))
		}
		return recs
	}
	appendWant := func(st *Store, recs []audit.Record, inserted int) {
		t.Helper()
		res, err := st.Append(ctx, recs)
		if err != nil {
			t.Fatal(err)
		}
		if res.Inserted != inserted || res.Duplicates != len(recs)-inserted {
			t.Fatalf("Append = %+v, want %d inserted of %d", res, inserted, len(recs))
		}
	}
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	first := batch(200)
	appendWant(st, first, 200)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	appendWant(st, first, 0) // the filter is built from the table
	second := batch(200)
	appendWant(st, append(second, first[:10]...), 200)
	appendWant(st, second, 0) // added by the append

	// Past its capacity, the filter is rebuilt from the table.
	st.keys.limit = st.keys.keys
	old := st.keys
	appendWant(st, append(batch(5), second...), 5)
	if st.keys == old {
		t.Fatal("the filter past its capacity was not rebuilt")
	}
	appendWant(st, first, 0)
	appendWant(st, second, 0)

	// A rolled-back append leaves keys in the filter that are not stored:
	// they are checked in the table and stored when they come again.
	third := batch(50)
	for _, r := range third {
		st.keys.add(keyHash(r.Account, r.EventID))
	}
	appendWant(st, third, 50)
	appendWant(st, third, 0)
}

