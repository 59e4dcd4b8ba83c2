package duckdb

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

// TestBulkKeys: every key added is held, across the chain's growth, and
// keys never added are held at about the designed rate (6 in a million at
// capacity; the test allows 50).
func TestBulkKeys(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var b bulkKeys
	added := make([]uint64, 2*bulkKeysFirst+17)
	for i := range added {
		added[i] = rng.Uint64()
		b.add(added[i])
	}
	if len(b.filters) != 2 {
		t.Errorf("%d filters for %d keys; want 2 (%d, then twice as many)", len(b.filters), len(added), bulkKeysFirst)
	}
	for _, h := range added {
		if !b.has(h) {
			t.Fatalf("key %x added, not held", h)
		}
	}
	const probes = 1_000_000
	var fp int
	for range probes {
		if b.has(rng.Uint64()) {
			fp++
		}
	}
	if fp > 50 {
		t.Errorf("%d false positives in %d keys never added; want at most 50", fp, probes)
	}
	var empty bulkKeys
	if empty.has(added[0]) {
		t.Error("an empty bulkKeys holds a key")
	}
}

// TestImportDuplicates: after BeginImport on an empty store the duplicate
// check asks the table only about hashes the import wrote (bulkKeys), and
// still finds every duplicate: a batch appended again, a batch of old and
// new records, copies within a batch, and records already stored across a
// reopen (where a new import begins on a store that holds rows, without
// bulkKeys). The records read back byte for byte.
func TestImportDuplicates(t *testing.T) {
	sh := storetest.NewShapes(t, 12)
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "events.duckdb")
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.BeginImport()
	if st.bulkKeys == nil {
		t.Fatal("BeginImport on an empty store: no bulkKeys")
	}
	a := sh.Records(500, base, base.Add(10*time.Hour), "111111111111", "eu-west-1")
	b := sh.Records(500, base.Add(10*time.Hour), base.Add(20*time.Hour), "111111111111", "eu-west-1")
	count := func(recs []audit.Record) (ins, dup int) {
		t.Helper()
		res, err := st.Append(ctx, recs)
		if err != nil {
			t.Fatal(err)
		}
		return res.Inserted, res.Duplicates
	}
	if ins, dup := count(a); ins != 500 || dup != 0 {
		t.Fatalf("first batch: %d inserted, %d duplicates", ins, dup)
	}
	if ins, dup := count(a); ins != 0 || dup != 500 {
		t.Fatalf("the same batch again: %d inserted, %d duplicates", ins, dup)
	}
	mixed := append(append([]audit.Record{}, a[:100]...), b...)
	mixed = append(mixed, b[:10]...)
	if ins, dup := count(mixed); ins != 500 || dup != 110 {
		t.Fatalf("100 old, 500 new, 10 copies: %d inserted, %d duplicates", ins, dup)
	}
	checkAll(t, st, append(append([]audit.Record{}, a...), b...))
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.BeginImport()
	if st.bulkKeys != nil {
		t.Error("BeginImport on a store that holds rows: bulkKeys")
	}
	if ins, dup := count(append(append([]audit.Record{}, a...), b...)); ins != 0 || dup != 1000 {
		t.Fatalf("everything again after a reopen: %d inserted, %d duplicates", ins, dup)
	}
}
