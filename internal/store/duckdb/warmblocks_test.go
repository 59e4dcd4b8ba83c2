package duckdb

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cairn-audit/cairn/internal/audit"
)

// openWithBlockRecords opens a serving (warm) store in a temporary
// folder and appends blockRecords to it.
func openWithBlockRecords(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "events.duckdb")
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blockRecords(t) {
		if _, err := st.Append(context.Background(), b); err != nil {
			st.Close()
			t.Fatal(err)
		}
	}
	return st, path
}

// TestBlockCacheAcrossRestart: the blocks the lookups read before Close
// are in the cache after the next Open (its first lookups decode none),
// and the pages are the same; a damaged, foreign or stale PATH.blocks
// costs nothing but the cold reads.
func TestBlockCacheAcrossRestart(t *testing.T) {
	ctx := context.Background()
	st, path := openWithBlockRecords(t)
	var err error
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
// answers), each one's newest record before any page, and the list Close
// saves is unchanged by the replay; a damaged, foreign or oversized
// PATH.lookups is skipped.
func TestLookupsReplayedAtOpen(t *testing.T) {
	ctx := context.Background()
	st, path := openWithBlockRecords(t)
	var err error
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
	// Breadth first: each saved lookup's newest record (Limit 1), newest
	// first, then each page, oldest first; a deep page run before the
	// other lookups' newest hours could take the whole budget.
	var order []audit.Query
	for _, q := range want {
		q.Limit = 1
		order = append(order, q)
	}
	for i := len(want) - 1; i >= 0; i-- {
		order = append(order, want[i])
	}
	if got := st.replayed; !cmp.Equal(got, order) {
		t.Errorf("the replay ran: %s", cmp.Diff(order, got))
	}
	// The saved list, for the server's own run of them through its API.
	if got := st.SavedLookups(); !cmp.Equal(got, want) {
		t.Errorf("SavedLookups: %s", cmp.Diff(want, got))
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
	st, path := openWithBlockRecords(t)
	var err error
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

// TestWarmStartHostileFiles: PATH.blocks and PATH.lookups in a form
// Close never writes (a symlink, a FIFO, /dev/zero behind a symlink, a
// file others may write) are neither read nor run: Open neither hangs
// nor grows without bound, answers as a cold store does, and replays
// nothing. A lookups file naming another account's lookups (and every
// account's) warms DuckDB but changes no answer.
func TestWarmStartHostileFiles(t *testing.T) {
	ctx := context.Background()
	st, path := openWithBlockRecords(t)
	mine := audit.Query{Account: "111111111111", Region: "eu-west-1", Category: audit.CategoryManagement, Limit: 50}
	theirs := audit.Query{Account: "222222222222", Region: "us-east-1", Category: audit.CategoryManagement, Limit: 50,
		Attributes: []audit.Attribute{{Key: audit.AttrReadOnly, Value: "true"}}}
	all := audit.Query{AnyAccount: true, AnyRegion: true, Category: audit.CategoryManagement, Limit: 1000}
	// Reopened: the tail is empty, so the lookups read blocks and Close
	// saves some.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []audit.Query{theirs, all, mine} {
		if _, err := st.Lookup(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	saved := map[string][]byte{}
	for _, ext := range []string{".blocks", ".lookups"} {
		b, err := os.ReadFile(path + ext)
		if err != nil {
			t.Fatal(err)
		}
		saved[ext] = b
	}
	if len(saved[".blocks"]) == len(warmFileMagic) {
		t.Fatal("Close saved no block: the test warms none")
	}
	cold, err := Open(path, Options{Cold: true})
	if err != nil {
		t.Fatal(err)
	}
	want, err := cold.Lookup(ctx, mine)
	if err != nil || len(want.Records) == 0 {
		t.Fatalf("cold Lookup: %d records, %v", len(want.Records), err)
	}
	if err := cold.Close(); err != nil {
		t.Fatal(err)
	}
	// Each case makes PATH.blocks or PATH.lookups from what Close saved
	// (the other file absent); warms says whether Open should use it.
	dir := t.TempDir()
	for _, c := range []struct {
		name  string
		make  func(t *testing.T, target string, content []byte)
		warms bool
	}{
		{"ours", func(t *testing.T, target string, content []byte) {
			if err := os.WriteFile(target, content, 0o600); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"writable by others", func(t *testing.T, target string, content []byte) {
			if err := os.WriteFile(target, content, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(target, 0o666); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"symlink to a saved file", func(t *testing.T, target string, content []byte) {
			other := filepath.Join(dir, "other-store"+filepath.Ext(target))
			if err := os.WriteFile(other, content, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(other, target); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"FIFO", func(t *testing.T, target string, _ []byte) {
			if err := syscall.Mkfifo(target, 0o600); err != nil {
				t.Skipf("mkfifo: %v", err)
			}
		}, false},
		{"symlink to a FIFO", func(t *testing.T, target string, _ []byte) {
			fifo := filepath.Join(dir, "fifo"+filepath.Ext(target))
			if err := syscall.Mkfifo(fifo, 0o600); err != nil && !os.IsExist(err) {
				t.Skipf("mkfifo: %v", err)
			}
			if err := os.Symlink(fifo, target); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"symlink to /dev/zero", func(t *testing.T, target string, _ []byte) {
			if err := os.Symlink("/dev/zero", target); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"a folder", func(t *testing.T, target string, _ []byte) {
			if err := os.Mkdir(target, 0o700); err != nil {
				t.Fatal(err)
			}
		}, false},
	} {
		for _, ext := range []string{".blocks", ".lookups"} {
			t.Run(c.name+" "+ext, func(t *testing.T) {
				for _, e := range []string{".blocks", ".lookups"} {
					if err := os.RemoveAll(path + e); err != nil {
						t.Fatal(err)
					}
				}
				c.make(t, path+ext, saved[ext])
				st, err := Open(path, Options{})
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				// Cold reads only: a replay or cached blocks would show
				// here.
				warmed := st.queries.Load() > 0 || len(st.blocks.ids()) > 0
				got, err := st.Lookup(ctx, mine)
				if cerr := st.Close(); cerr != nil {
					t.Error(cerr)
				}
				if err != nil {
					t.Fatal(err)
				}
				if warmed != c.warms {
					t.Errorf("Open warmed the store from %s: %v; want %v", ext, warmed, c.warms)
				}
				if !cmp.Equal(got, want) {
					t.Errorf("Lookup after Open: %s", cmp.Diff(want, got))
				}
				for _, r := range got.Records {
					if r.Account != mine.Account {
						t.Fatalf("a lookup of %s answered a record of %s", mine.Account, r.Account)
					}
				}
			})
		}
	}
}
