package duckdb

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cairn-audit/cairn/internal/audit"
)

// TestBlockCacheAcrossRestart: the blocks the lookups read before Close
// are in the cache after the next Open (its first lookups decode none),
// and the pages are the same; a damaged, foreign or stale PATH.blocks
// costs nothing but the cold reads.
func TestBlockCacheAcrossRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "events.duckdb")
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blockRecords(t) {
		if _, err := st.Append(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	queries := []audit.Query{
		{Account: "111111111111", Region: "eu-west-1", Category: audit.CategoryManagement, Limit: 50},
		{Account: "222222222222", Region: "us-east-1", Category: audit.CategoryManagement, Limit: 7},
	}
	pages := func(st *Store) [][]audit.Record {
		var out [][]audit.Record
		for _, q := range queries {
			p, err := st.Lookup(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Records) == 0 {
				t.Fatalf("Lookup(%+v): no records", q)
			}
			out = append(out, p.Records)
		}
		return out
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopened: the tail is empty, so the lookups read blocks.
	st, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := pages(st)
	decoded := st.blocksDecoded.Load()
	if decoded == 0 {
		t.Fatal("the lookups decoded no block: the test reads none")
	}
	cached := st.blocks.ids()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := st.blocks.ids(); !cmp.Equal(got, cached) {
		t.Errorf("cache after the restart %v; want %v (most recently used first)", got, cached)
	}
	d0 := st.blocksDecoded.Load()
	if got := pages(st); !cmp.Equal(got, want) {
		t.Errorf("pages after the restart differ: %s", cmp.Diff(want, got))
	}
	if n := st.blocksDecoded.Load() - d0; n != 0 {
		t.Errorf("the first lookups after the restart decoded %d blocks; want 0", n)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name string
		file []byte
	}{
		{"damaged", []byte(warmFileMagic + "abc")},
		{"not ours", []byte("hello")},
		{"empty", nil},
		{"out of range", binary.LittleEndian.AppendUint64([]byte(warmFileMagic), 1<<63)},
		{"absent blocks", binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64([]byte(warmFileMagic), 1<<40), 7)},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(path+".blocks", c.file, 0o600); err != nil {
				t.Fatal(err)
			}
			st, err := Open(path, Options{})
			if err != nil {
				t.Fatalf("Open with a %s PATH.blocks: %v", c.name, err)
			}
			defer st.Close()
			if got := pages(st); !cmp.Equal(got, want) {
				t.Errorf("pages differ: %s", cmp.Diff(want, got))
			}
		})
	}
	// A file naming more blocks than the cache holds keeps the most
	// recently used.
	b := []byte(warmFileMagic)
	for _, id := range cached {
		b = binary.LittleEndian.AppendUint64(b, uint64(id))
	}
	if err := os.WriteFile(path+".blocks", b, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err = Open(path, Options{BlockCacheBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got := st.blocks.ids(); len(got) != 0 {
		t.Errorf("a cache of 1 byte holds %d blocks after Open; want 0", len(got))
	}
}

// TestRecentLookups: the lookups kept are the last distinct ones, newest
// first, one for lookups that differ only in End and ReceivedSince.
func TestRecentLookups(t *testing.T) {
	var r recentLookups
	q := func(name string, end int64) audit.Query {
		return audit.Query{Account: "111111111111", Region: "eu-west-1", Category: audit.CategoryManagement, Limit: 50,
			End: time.Unix(end, 0), Attributes: []audit.Attribute{{Key: audit.AttrEventName, Value: name}}}
	}
	r.add(q("A", 1))
	r.add(q("B", 2))
	r.add(q("A", 3)) // the same page as the first, asked later
	got := r.list()
	if len(got) != 2 || got[0].Attributes[0].Value != "A" || got[0].End.Unix() != 3 || got[1].Attributes[0].Value != "B" {
		t.Fatalf("recent = %+v; want A (End 3), B", got)
	}
	after := q("A", 3)
	after.After = &audit.Cursor{Time: time.Unix(5, 0), EventID: "x"}
	r.add(after)
	if got := r.list(); len(got) != 3 || got[0].After == nil {
		t.Fatalf("a next page is a lookup of its own: recent = %+v", got)
	}
	for i := range 2 * recentLookupsMax {
		r.add(q(fmt.Sprint(i), int64(i)))
	}
	got = r.list()
	if len(got) != recentLookupsMax || got[0].Attributes[0].Value != fmt.Sprint(2*recentLookupsMax-1) ||
		got[recentLookupsMax-1].Attributes[0].Value != fmt.Sprint(recentLookupsMax) {
		t.Fatalf("after %d more: %d kept, newest %v, oldest %v", 2*recentLookupsMax, len(got), got[0].Attributes, got[len(got)-1].Attributes)
	}
}

// TestLookupsReplayedAtOpen: the lookups served before Close are run
// again by the next Open (DuckDB reads their row groups before the store
// answers); a damaged, foreign or oversized PATH.lookups is skipped.
func TestLookupsReplayedAtOpen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "events.duckdb")
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blockRecords(t) {
		if _, err := st.Append(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	qs := []audit.Query{
		{Account: "111111111111", Region: "eu-west-1", Category: audit.CategoryManagement, Limit: 50},
		{Account: "222222222222", Region: "us-east-1", Category: audit.CategoryManagement, Limit: 7,
			Attributes: []audit.Attribute{{Key: audit.AttrReadOnly, Value: "true"}}},
	}
	for _, q := range qs {
		if _, err := st.Lookup(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	want := st.recent.list()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := st.queries.Load(); n == 0 {
		t.Error("Open ran no lookup query")
	}
	if got := st.recent.list(); !cmp.Equal(got, want) {
		t.Errorf("recent lookups after Open: %s", cmp.Diff(want, got))
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, maxLookupsFile+10)
	for i := range big {
		big[i] = ' '
	}
	for _, c := range []struct {
		name string
		file []byte
	}{
		{"damaged", []byte(`{"Version":1,"Lookups":[{"Acc`)},
		{"another version", []byte(`{"Version":2,"Lookups":[]}`)},
		{"not ours", []byte("hello")},
		{"oversized", big},
		{"hostile values", []byte(`{"Version":1,"Lookups":[{"Account":"x' OR 1=1 --","Limit":-5},{"Limit":1000000,"AnyAccount":true,"AnyRegion":true,"Attributes":[{"Key":"Nope","Value":""}]}]}`)},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(path+".lookups", c.file, 0o600); err != nil {
				t.Fatal(err)
			}
			st, err := Open(path, Options{})
			if err != nil {
				t.Fatalf("Open with a %s PATH.lookups: %v", c.name, err)
			}
			defer st.Close()
			p, err := st.Lookup(ctx, qs[0])
			if err != nil || len(p.Records) == 0 {
				t.Errorf("Lookup after Open: %d records, %v", len(p.Records), err)
			}
		})
	}
}

// TestColdOpenLeavesTheWarmStart: a store opened Cold (an offline
// command) neither replays the saved lookups nor reads the saved blocks,
// and its Close leaves both files as the serving store saved them.
func TestColdOpenLeavesTheWarmStart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "events.duckdb")
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blockRecords(t) {
		if _, err := st.Append(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	q := audit.Query{Account: "111111111111", Region: "eu-west-1", Category: audit.CategoryManagement, Limit: 50}
	if _, err := st.Lookup(ctx, q); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	saved := map[string][]byte{}
	for _, f := range []string{path + ".blocks", path + ".lookups"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("the serving store's Close saved no %s: %v", f, err)
		}
		saved[f] = b
	}
	cold, err := Open(path, Options{Cold: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := cold.queries.Load(); n != 0 {
		t.Errorf("a cold Open ran %d lookup queries", n)
	}
	if n := len(cold.blocks.ids()); n != 0 {
		t.Errorf("a cold Open cached %d blocks", n)
	}
	q.Region = "us-east-1"
	q.Account = "222222222222"
	if _, err := cold.Lookup(ctx, q); err != nil {
		t.Fatal(err)
	}
	if err := cold.Close(); err != nil {
		t.Fatal(err)
	}
	for f, want := range saved {
		got, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("a cold store's Close changed %s", f)
		}
	}
}
