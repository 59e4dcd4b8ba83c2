package duckdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

// TestKeyFilterHoldsEveryKey: no key added is ever reported absent, and
// few others are reported present.
func TestKeyFilterHoldsEveryKey(t *testing.T) {
	f := newKeyFilter(131_072)
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
	// 100,000 keys fill the filter (131,072 keys) to 76%: 4 probes
	// across the filter answered about 0.09% here, 8 in a block 0.01%.
	if fp > 40 {
		t.Errorf("%d false positives in 100,000, want under 0.04%%", fp)
	}
}

// TestKeyFilterFalsePositivesFull: a filter at its capacity, where it is
// rebuilt, answers under 0.1% false positives (4 probes across the
// filter: 0.24%).
func TestKeyFilterFalsePositivesFull(t *testing.T) {
	f := newKeyFilter(keyFilterMinKeys)
	for i := range f.limit {
		f.add(keyHash("123456789012", fmt.Sprintf("id-%d", i)))
	}
	fp := 0
	const n = 200_000
	for i := range n {
		if f.has(keyHash("210987654321", fmt.Sprintf("other-%d", i))) {
			fp++
		}
	}
	t.Logf("%d false positives in %d at capacity", fp, n)
	if fp > n/1000 {
		t.Errorf("%d false positives in %d, want under 0.1%%", fp, n)
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
	appendWant(st, first, 0) // the filter saved at Close is loaded
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

// TestConcurrentAppendsFramesEarly: appends that compress their records
// before the writer's lock, run at once with overlapping batches, store
// each record once; a Close among them fails the later appends cleanly.
func TestConcurrentAppendsFramesEarly(t *testing.T) {
	ctx := context.Background()
	st, err := Open(filepath.Join(t.TempDir(), "events.duckdb"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	base := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	g := storetest.NewGen(5, base)
	batch := func(n int) []audit.Record {
		var recs []audit.Record
		for i := range n {
			recs = append(recs, g.Record(storetest.Spec{Time: base.Add(time.Duration(i) * time.Second)}))
		}
		return recs
	}
	if _, err := st.Append(ctx, batch(10)); err != nil { // builds the key filter
		t.Fatal(err)
	}
	shared := batch(300)
	own := make([][]audit.Record, 4)
	for i := range own {
		own[i] = batch(100)
	}
	results := make([]audit.AppendResult, 4)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			res, err := st.Append(ctx, append(slices.Clone(shared), own[i]...))
			if err != nil {
				t.Error(err)
			}
			results[i] = res
		})
	}
	wg.Wait()
	var ins, dup int
	for _, r := range results {
		ins += r.Inserted
		dup += r.Duplicates
	}
	if ins != 300+4*100 || dup != 3*300 {
		t.Errorf("inserted %d, duplicates %d; want %d and %d", ins, dup, 700, 900)
	}
	all := append(slices.Clone(shared), slices.Concat(own...)...)
	if res, err := st.Append(ctx, all); err != nil || res.Inserted != 0 {
		t.Errorf("second append of all = %+v, %v; want nothing inserted", res, err)
	}
	for _, r := range all {
		p, err := st.Lookup(ctx, audit.Query{Account: r.Account, Region: r.Region, Category: r.Category,
			Attributes: []audit.Attribute{{Key: audit.AttrEventID, Value: r.EventID}}, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Records) != 1 || string(p.Records[0].Raw) != string(r.Raw) {
			t.Fatalf("record %s: %d found, want it once with its bytes", r.EventID, len(p.Records))
		}
	}

	// Close while appends compress and commit.
	for range 3 {
		batches := [][]audit.Record{batch(200), batch(200), batch(200), batch(200), batch(200)}
		wg.Go(func() {
			for _, b := range batches {
				if _, err := st.Append(ctx, b); err != nil {
					if !errors.Is(err, errClosed) {
						t.Errorf("append after Close: %v; want errClosed", err)
					}
					return
				}
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	if err := st.Close(); err != nil {
		t.Error(err)
	}
	wg.Wait()
}

// TestSavedKeyFilterIsLoadedOnlyWhileItHoldsEveryKey: Close saves the key
// filter beside the store and the next Open's first append loads it
// instead of scanning key_hash, but only while it still describes the
// table: a filter that might miss a stored key is never used (the records
// it lacks would be taken for new and stored twice). Each variant ends by
// appending every stored record again: nothing may be inserted.
func TestSavedKeyFilterIsLoadedOnlyWhileItHoldsEveryKey(t *testing.T) {
	ctx := context.Background()
	base := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	received := time.Now()
	for _, tc := range []struct {
		name string
		// between changes the closed store at path (holding 200 records,
		// the first 100 received two hours before the others) before it
		// is opened again; it returns how many records it stored.
		between func(t *testing.T, path string, g *storetest.Gen) int
		loaded  bool
	}{
		{"clean close", func(*testing.T, string, *storetest.Gen) int { return 200 }, true},
		{"appended since the save (a crash before Close saved again)", func(t *testing.T, path string, g *storetest.Gen) int {
			old := readFile(t, path+".keys")
			run(t, path, func(st *Store) { mustAppend(t, st, genBatch(g, base, 100), 100) })
			writeFile(t, path+".keys", old)
			return 300
		}, false},
		{"another store of the same size", func(t *testing.T, path string, g *storetest.Gen) int {
			other := filepath.Join(t.TempDir(), "events.duckdb")
			run(t, other, func(st *Store) { mustAppend(t, st, genBatch(g, base, 200), 200) })
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			writeFile(t, path, readFile(t, other)) // the first store's saved filter stays
			return 200
		}, false},
		{"rows deleted since, by a store that did not load the filter", func(t *testing.T, path string, g *storetest.Gen) int {
			st, err := Open(path, Options{Cold: true})
			if err != nil {
				t.Fatal(err)
			}
			if n, err := st.DeleteReceivedBefore(ctx, received.Add(-time.Hour)); err != nil || n != 100 {
				t.Fatalf("DeleteReceivedBefore = %d, %v; want 100", n, err)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			return 100
		}, false},
		{"rows deleted by a server (the filter it loaded at Open saved again)", func(t *testing.T, path string, g *storetest.Gen) int {
			st, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if n, err := st.DeleteReceivedBefore(ctx, received.Add(-time.Hour)); err != nil || n != 100 {
				t.Fatalf("DeleteReceivedBefore = %d, %v; want 100", n, err)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			return 100
		}, true},
		{"opened and closed by a server without an append", func(t *testing.T, path string, g *storetest.Gen) int {
			before := readFile(t, path+".keys")
			run(t, path, func(st *Store) {
				if st.keys == nil || st.keyFilterBuilds.Load() != 0 {
					t.Errorf("after Open: filter %v, built %d times; want it loaded", st.keys != nil, st.keyFilterBuilds.Load())
				}
			})
			if !bytes.Equal(readFile(t, path+".keys"), before) {
				t.Error("Close without an append rewrote the saved filter")
			}
			return 200
		}, true},
		{"truncated file", func(t *testing.T, path string, g *storetest.Gen) int {
			b := readFile(t, path+".keys")
			writeFile(t, path+".keys", b[:len(b)/2])
			return 200
		}, false},
		{"sizes that do not agree", func(t *testing.T, path string, g *storetest.Gen) int {
			b := readFile(t, path+".keys")
			b[len(keyFileMagic)+8*5] ^= 1 // the word count
			writeFile(t, path+".keys", b)
			return 200
		}, false},
		{"a filter of 4 probes (v1)", func(t *testing.T, path string, g *storetest.Gen) int {
			b := readFile(t, path+".keys")
			copy(b, keyFileMagicV1)
			writeFile(t, path+".keys", b)
			return 200
		}, false},
		{"a v2 filter (a power of two of blocks)", func(t *testing.T, path string, g *storetest.Gen) int {
			// The store's keys in a filter of the v2 layout, saved by
			// Close as before session 31.
			run(t, path, func(st *Store) {
				f := newKeyFilterV2(2 * 200)
				if err := st.addTableKeys(ctx, f); err != nil {
					t.Fatal(err)
				}
				st.writeMu.Lock()
				st.keys, st.keysSaved = f, false
				st.writeMu.Unlock()
			})
			if b := readFile(t, path+".keys"); !bytes.HasPrefix(b, []byte(keyFileMagicV2)) {
				t.Fatalf("the saved filter starts %q, want %q", b[:min(len(b), len(keyFileMagicV2))], keyFileMagicV2)
			}
			return 200
		}, true},
		{"not a key filter", func(t *testing.T, path string, g *storetest.Gen) int {
			writeFile(t, path+".keys", []byte("{}"))
			return 200
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.duckdb")
			g := storetest.NewGen(7, base)
			first := genBatch(g, base, 200)
			run(t, path, func(st *Store) {
				st.now = func() time.Time { return received.Add(-2 * time.Hour) }
				mustAppend(t, st, first[:100], 100)
				st.now = func() time.Time { return received }
				mustAppend(t, st, first[100:], 100)
			})
			if _, err := os.Stat(path + ".keys"); err != nil {
				t.Fatalf("no key filter saved at Close: %v", err)
			}
			want := tc.between(t, path, g)
			run(t, path, func(st *Store) {
				p, err := st.Lookup(ctx, audit.Query{Account: first[0].Account, Region: first[0].Region, Category: first[0].Category, Limit: 1000})
				if err != nil {
					t.Fatal(err)
				}
				if len(p.Records) != want {
					t.Fatalf("%d records stored, want %d", len(p.Records), want)
				}
				res, err := st.Append(ctx, p.Records)
				if err != nil {
					t.Fatal(err)
				}
				if res.Inserted != 0 || res.Duplicates != want {
					t.Errorf("second append of the %d stored records = %+v, want all duplicates", want, res)
				}
				if builds := st.keyFilterBuilds.Load(); tc.loaded != (builds == 0) {
					t.Errorf("key filter built from the table %d times; want it loaded: %v", builds, tc.loaded)
				}
			})
		})
	}
}

// TestKeyFilterLoadedAtOpen: a server's Open (not Cold) loads the saved
// key filter, or builds it, before it returns, so that its first append
// (the self-record of its first call) does not, beside its first
// lookups; an offline command's (Cold) leaves it to the first append.
func TestKeyFilterLoadedAtOpen(t *testing.T) {
	ctx := context.Background()
	base := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	g := storetest.NewGen(11, base)
	path := filepath.Join(t.TempDir(), "events.duckdb")
	recs := genBatch(g, base, 300)
	run(t, path, func(st *Store) {
		if st.keys == nil || st.keyFilterBuilds.Load() != 1 {
			t.Errorf("a new store's Open: filter %v, built %d times; want built once", st.keys != nil, st.keyFilterBuilds.Load())
		}
		mustAppend(t, st, recs, 300)
	})
	for _, cold := range []bool{false, true} {
		st, err := Open(path, Options{Cold: cold})
		if err != nil {
			t.Fatal(err)
		}
		if got := st.keys != nil; got == cold {
			t.Errorf("Open(Cold: %v): filter loaded %v", cold, got)
		}
		res, err := st.Append(ctx, append(genBatch(g, base, 5), recs[:50]...))
		if err != nil {
			t.Fatal(err)
		}
		if res.Inserted != 5 || res.Duplicates != 50 {
			t.Errorf("Open(Cold: %v): append = %+v; want 5 inserted, 50 duplicates", cold, res)
		}
		if b := st.keyFilterBuilds.Load(); b != 0 {
			t.Errorf("Open(Cold: %v): filter built %d times; want loaded", cold, b)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func genBatch(g *storetest.Gen, base time.Time, n int) []audit.Record {
	var recs []audit.Record
	for i := range n {
		recs = append(recs, g.Record(storetest.Spec{Time: base.Add(time.Duration(i) * time.Minute)}))
	}
	return recs
}

// run opens the store at path, calls f and closes it.
func run(t *testing.T, path string, f func(st *Store)) {
	t.Helper()
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	f(st)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

func mustAppend(t *testing.T, st *Store, recs []audit.Record, inserted int) {
	t.Helper()
	res, err := st.Append(context.Background(), recs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Inserted != inserted {
		t.Fatalf("Append = %+v, want %d inserted", res, inserted)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestStoredKeys: the key check finds every stored record (before any
// append since Open, after appends, with filter hits that are not stored)
// and no other, by account and event ID.
func TestStoredKeys(t *testing.T) {
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
	check := func(st *Store, recs []audit.Record, want func(i int) bool) {
		t.Helper()
		got, err := st.StoredKeys(ctx, recs)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(recs) {
			t.Fatalf("StoredKeys returned %d answers for %d records", len(got), len(recs))
		}
		for i := range recs {
			if got[i] != want(i) {
				t.Fatalf("StoredKeys(%s/%s) = %v; want %v", recs[i].Account, recs[i].EventID, got[i], want(i))
			}
		}
	}
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	first := batch(100)
	check(st, first, func(int) bool { return false }) // empty store, no filter yet
	if _, err := st.Append(ctx, first); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.StoredKeys(ctx, first); err == nil {
		t.Error("StoredKeys on a closed store succeeded")
	}

	st, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	second := batch(100)
	both := append(slices.Clone(first), second...)
	check(st, both, func(i int) bool { return i < len(first) }) // no append since Open
	// The same event ID in another account is not stored.
	other := slices.Clone(first[:5])
	for i := range other {
		other[i].Account = "999999999999"
	}
	check(st, other, func(int) bool { return false })
	// Filter hits that are not stored are told apart by the table.
	for _, r := range second {
		st.keys.add(keyHash(r.Account, r.EventID))
	}
	check(st, both, func(i int) bool { return i < len(first) })
	if _, err := st.Append(ctx, second[:50]); err != nil {
		t.Fatal(err)
	}
	check(st, both, func(i int) bool { return i < len(first)+50 })
}

// newKeyFilterV2 is newKeyFilter as it was before session 31: a power of
// two of blocks (v2).
func newKeyFilterV2(keys int64) *keyFilter {
	keys = max(keys, keyFilterMinKeys)
	n := uint64(1) << bits.Len64(uint64(keys*keyFilterBitsPerKey)-1)
	return &keyFilter{bits: make([]uint64, n/64), blocks: n / 512, limit: int64(n / keyFilterBitsPerKey), pow2: true}
}

// TestKeyFilterSizes: a filter has as many blocks as its keys need (v3),
// and a v2 filter's layout holds every key and few others too.
func TestKeyFilterSizes(t *testing.T) {
	for _, keys := range []int64{keyFilterMinKeys, 100_001, 10_000_000} {
		f := newKeyFilter(keys)
		if f.limit < keys || f.limit-keys >= keyFilterBlockKeys || uint64(len(f.bits)) != f.blocks*keyFilterBlockWords {
			t.Errorf("newKeyFilter(%d): limit %d, %d blocks, %d words", keys, f.limit, f.blocks, len(f.bits))
		}
	}
	for _, f := range []*keyFilter{newKeyFilter(100_001), newKeyFilterV2(100_001)} {
		for i := range 100_001 {
			f.add(keyHash("123456789012", fmt.Sprintf("id-%d", i)))
		}
		used := map[int]bool{}
		for i := range 100_001 {
			h := keyHash("123456789012", fmt.Sprintf("id-%d", i))
			if !f.has(h) {
				t.Fatalf("pow2 %v: key %d added but not held", f.pow2, i)
			}
			b, _ := f.probes(h)
			used[b] = true
		}
		fp := 0
		const n = 200_000
		for i := range n {
			if f.has(keyHash("210987654321", fmt.Sprintf("other-%d", i))) {
				fp++
			}
		}
		t.Logf("pow2 %v: %d blocks, %d used, %d false positives in %d", f.pow2, f.blocks, len(used), fp, n)
		// At capacity (v3, 100,001 keys in 3,126 blocks) under 0.1%;
		// every block takes keys.
		if fp > n/1000 || len(used) != int(f.blocks) {
			t.Errorf("pow2 %v: %d false positives in %d, %d of %d blocks used", f.pow2, fp, n, len(used), f.blocks)
		}
	}
}
