package duckdb

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

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
