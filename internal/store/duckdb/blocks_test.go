package duckdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

// blockRecords returns records of two accounts and regions: dense hours
// (hundreds of records, several blocks each), sparse ones (fewer than
// minBlockRecords, frames of their own), a record larger than a block and
// records with odd bytes, in batches as an import or the pipeline hands
// them over.
func blockRecords(t *testing.T) [][]audit.Record {
	t.Helper()
	sh := storetest.NewShapes(t, 7)
	base := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	var batches [][]audit.Record
	dense := sh.Records(700, base, base.Add(2*time.Hour), "111111111111", "eu-west-1")
	dense = append(dense, sh.Records(300, base, base.Add(time.Hour), "222222222222", "us-east-1")...)
	batches = append(batches, dense)
	var sparse []audit.Record
	for i := range 40 {
		sparse = append(sparse, sh.Record(base.Add(time.Duration(i)*5*time.Hour), "111111111111", "eu-west-1"))
	}
	// A record larger than a block, and one with bytes a block must keep
	// as they are (NUL, invalid UTF-8 in a string the JSON carries).
	big := sh.Record(base.Add(30*time.Minute), "111111111111", "eu-west-1")
	big.Raw = append(bytes.TrimSuffix(big.Raw, []byte("}")), []byte(`,"pad":"`+strings.Repeat("x", 200<<10)+`"}`)...)
	odd := sh.Record(base.Add(31*time.Minute), "111111111111", "eu-west-1")
	odd.Raw = append(bytes.TrimSuffix(odd.Raw, []byte("}")), []byte(",\"odd\":\"\x00\xff\"}")...)
	sparse = append(sparse, big, odd)
	batches = append(batches, sparse)
	// A later batch adds to the dense hours: new blocks beside the old.
	batches = append(batches, sh.Records(500, base, base.Add(2*time.Hour), "111111111111", "eu-west-1"))
	return batches
}

// TestRecordBlocks: records stored in blocks come back byte for byte
// through Lookup (every account, region and category, paged) and
// ReadAppended, before and after a reopen, whatever the block size and
// cache (one record a block, no cache, no blocks at all), and in a store
// that mixes frames of their own (S2, zstd) with blocks.
func TestRecordBlocks(t *testing.T) {
	batches := blockRecords(t)
	var all []audit.Record
	for _, b := range batches {
		all = append(all, b...)
	}
	for _, v := range []struct {
		name   string
		opts   []Options // one per batch, the store reopened between
		blocks bool
		bulk   bool // BeginImport after each Open
	}{
		{"default", []Options{{}}, true, false},
		{"small blocks", []Options{{BlockBytes: 2048}}, true, false},
		{"no cache", []Options{{BlockCacheBytes: 1}}, true, false},
		{"no blocks", []Options{{BlockBytes: -1}}, false, false},
		{"mixed", []Options{{BlockBytes: -1}, {BlockBytes: -1, ZstdRecords: true}, {}}, true, false},
		{"import", []Options{{}}, true, true},
		{"import, small blocks", []Options{{BlockBytes: 2048}}, true, true},
	} {
		t.Run(v.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.duckdb")
			var st *Store
			for i, b := range batches {
				o := v.opts[min(i, len(v.opts)-1)]
				if st == nil || len(v.opts) > 1 {
					if st != nil {
						st.Close()
					}
					var err error
					if st, err = Open(path, o); err != nil {
						t.Fatal(err)
					}
					if v.bulk {
						st.BeginImport()
					}
				}
				if _, err := st.Append(context.Background(), b); err != nil {
					t.Fatal(err)
				}
			}
			var n int
			if err := st.db.QueryRow(`SELECT count(*) FROM record_blocks`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if got := n > 0; got != v.blocks {
				t.Errorf("%d record blocks; want blocks: %v", n, v.blocks)
			}
			checkAll(t, st, all)
			st.Close()
			st, err := Open(path, v.opts[len(v.opts)-1])
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			checkAll(t, st, all)
		})
	}
}

// checkAll checks that st returns every record of recs exactly.
func checkAll(t *testing.T, st *Store, recs []audit.Record) {
	t.Helper()
	byID := map[string]audit.Record{}
	type part struct {
		a, r string
		c    audit.Category
	}
	parts := map[part]bool{}
	for _, r := range recs {
		byID[r.EventID] = r
		parts[part{r.Account, r.Region, r.Category}] = true
	}
	same := func(how string, got audit.Record) {
		w, ok := byID[got.EventID]
		if !ok {
			t.Fatalf("%s: record %q was never stored", how, got.EventID)
		}
		if !bytes.Equal(got.Raw, w.Raw) {
			t.Fatalf("%s: record %q: raw bytes differ (%d vs %d bytes)", how, got.EventID, len(got.Raw), len(w.Raw))
		}
		// Raw compared above; cmp walks a byte slice by reflection.
		w.Raw, got.Raw = nil, nil
		if diff := cmp.Diff(w, got, storetest.EquateRecords); diff != "" {
			t.Fatalf("%s: record %q differs (-want +got):\n%s", how, got.EventID, diff)
		}
	}
	app, err := st.ReadAppended(context.Background(), 0, len(recs)+10)
	if err != nil {
		t.Fatal(err)
	}
	if len(app) != len(recs) {
		t.Fatalf("ReadAppended: %d records; want %d", len(app), len(recs))
	}
	for _, a := range app {
		same("ReadAppended", a.Record)
	}
	var found int
	for p := range parts {
		q := audit.Query{Account: p.a, Region: p.r, Category: p.c, Limit: 50,
			Start: time.Unix(0, 0), End: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)}
		for _, r := range lookupAll(t, st, q) {
			same("Lookup", r)
			found++
		}
	}
	if found != len(recs) {
		t.Fatalf("lookups found %d records; want %d", found, len(recs))
	}
}

// TestPageDecodesWhatItReturns: a page of 50 from hours stored in blocks
// decodes the few blocks that hold its records, not the hour's or the
// batch's: the newest page, a page deep in the past and a page of one
// EventName's records, each with the cache empty; a page read again
// decodes nothing.
func TestPageDecodesWhatItReturns(t *testing.T) {
	sh := storetest.NewShapes(t, 3)
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	recs := sh.Records(6000, base, base.Add(6*time.Hour), "111111111111", "eu-west-1")
	st, path := openTemp(t, recs)
	st.Close()
	q := audit.Query{Account: "111111111111", Region: "eu-west-1", Category: audit.CategoryManagement, Limit: 50,
		Start: base, End: base.Add(24 * time.Hour)}
	deep := recs[3000]
	name := recs[len(recs)-1].EventName
	for _, c := range []struct {
		name string
		q    func(audit.Query) audit.Query
	}{
		{"newest", func(q audit.Query) audit.Query { return q }},
		{"deep", func(q audit.Query) audit.Query { q.After = q.CursorOf(&deep); return q }},
		{"event name", func(q audit.Query) audit.Query {
			q.Attributes = []audit.Attribute{{Key: audit.AttrEventName, Value: name}}
			return q
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			// An empty cache: without the blocks and lookups the last
			// Close saved (warmblocks.go).
			for _, f := range []string{path + ".blocks", path + ".lookups"} {
				if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
					t.Fatal(err)
				}
			}
			st, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			p, err := st.Lookup(context.Background(), c.q(q))
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Records) == 0 {
				t.Fatal("empty page")
			}
			var raw int
			for _, r := range p.Records {
				raw += len(r.Raw)
			}
			// The page's records sit in blocks of defaultBlockBytes; an
			// EventName's records may each sit in a block of its own.
			limit := int64(raw/defaultBlockBytes + 3)
			if c.name == "event name" {
				limit = int64(len(p.Records) + 1)
			}
			if got := st.blocksDecoded.Load(); got == 0 || got > limit {
				t.Errorf("a page of %d records (%d KiB) decoded %d blocks; want 1 to %d", len(p.Records), raw>>10, got, limit)
			}
			before := st.blocksDecoded.Load()
			if _, err := st.Lookup(context.Background(), c.q(q)); err != nil {
				t.Fatal(err)
			}
			if got := st.blocksDecoded.Load() - before; got != 0 {
				t.Errorf("the same page again decoded %d blocks; want 0 (cached)", got)
			}
		})
	}
}

// TestBlocksExpireWithTheirRecords: retention deletes a batch's blocks
// with its rows, and the later batch's records still read.
func TestBlocksExpireWithTheirRecords(t *testing.T) {
	batches := blockRecords(t)
	path := filepath.Join(t.TempDir(), "events.duckdb")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st, err := Open(path, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, b := range batches[:2] {
		if _, err := st.Append(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(48 * time.Hour)
	if _, err := st.Append(context.Background(), batches[2]); err != nil {
		t.Fatal(err)
	}
	count := func() (n int) {
		if err := st.db.QueryRow(`SELECT count(*) FROM record_blocks`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := count()
	if _, err := st.DeleteReceivedBefore(context.Background(), now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	after := count()
	if after == 0 || after >= before {
		t.Errorf("record blocks: %d before retention, %d after; want fewer, not none", before, after)
	}
	checkAll(t, st, batches[2])
	if _, err := st.DeleteReceivedBefore(context.Background(), now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 0 {
		t.Errorf("%d record blocks left with no record; want 0", n)
	}
}

// TestDamagedBlockReferences: a row whose block reference is damaged (a
// truncated varint, a place past its block's end, a block that is not
// there, trailing bytes, a huge length; in the integer columns negative,
// out-of-range or missing values) makes a lookup, ReadAppended and ReadRaw
// fail with an error, never a panic or a record cut wrongly.
func TestDamagedBlockReferences(t *testing.T) {
	sh := storetest.NewShapes(t, 5)
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	recs := sh.Records(200, base, base.Add(time.Hour), "111111111111", "eu-west-1")
	blob := func(ref []byte) string {
		lit := ""
		for _, b := range ref {
			lit += fmt.Sprintf(`\x%02x`, b)
		}
		return fmt.Sprintf(`record = '%s'::BLOB`, lit)
	}
	for _, c := range []struct {
		name string
		set  string // the damage, an UPDATE's SET
	}{
		// References in the record column (written before session 23).
		{"truncated", blob([]byte{frameBlockV1, 0x80})},
		{"past the end", blob(appendBlockRef(nil, 1, 1<<20, 10))},
		{"no such block", blob(appendBlockRef(nil, 1<<40, 0, 10))},
		{"trailing bytes", blob(append(appendBlockRef(nil, 1, 0, 10), 0))},
		{"huge length", blob(appendBlockRef(nil, 1, 0, 1<<62))},
		{"empty", blob([]byte{}) + `, blk_id = NULL, blk_off = NULL, blk_len = NULL`},
		// References in the integer columns.
		{"negative offset", `blk_off = -1`},
		{"negative length", `blk_len = -5`},
		{"negative id", `blk_id = -1`},
		{"offset past the end", `blk_off = 1 << 20`},
		{"offset out of range", `blk_off = 2147483647`},
		{"length out of range", `blk_len = 2147483647`},
		{"id out of range", `blk_id = 9223372036854775807`},
		{"id of no block", `blk_id = 1099511627776`},
		{"no offset", `blk_off = NULL`},
		{"no length", `blk_len = NULL`},
		{"no id", `blk_id = NULL`},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, path := openTemp(t, recs)
			st = reopenAfter(t, st, path, `UPDATE events SET `+c.set+` WHERE seq = 17`)
			q := audit.Query{Account: "111111111111", Region: "eu-west-1", Category: audit.CategoryManagement, Limit: 1000,
				Start: base, End: base.Add(2 * time.Hour)}
			if _, err := st.Lookup(context.Background(), q); err == nil {
				t.Error("Lookup of a page with a damaged reference: no error")
			}
			if _, err := st.ReadAppended(context.Background(), 0, 1000); err == nil {
				t.Error("ReadAppended of a damaged reference: no error")
			}
			if _, err := st.ReadRaw(context.Background(), 0, 1000); err == nil {
				t.Error("ReadRaw of a damaged reference: no error")
			}
			// The other rows still read.
			if got, err := st.ReadAppended(context.Background(), 17, 1000); err != nil || len(got) != len(recs)-17 {
				t.Errorf("ReadAppended after the damaged row: %d records, %v; want %d", len(got), err, len(recs)-17)
			}
		})
	}
}

// FuzzParseBlockRef: any bytes parse to an error or to a reference whose
// encoding parses to the same place.
func FuzzParseBlockRef(f *testing.F) {
	f.Add(appendBlockRef(nil, 1, 0, 10))
	f.Add(appendBlockRef(nil, 1<<40, 1<<20, 1<<16))
	f.Add([]byte{frameBlockV1})
	f.Fuzz(func(t *testing.T, b []byte) {
		id, off, n, err := parseBlockRef(b)
		if err != nil {
			return
		}
		back := appendBlockRef(nil, id, off, n)
		id2, off2, n2, err := parseBlockRef(back)
		if err != nil || id2 != id || off2 != off || n2 != n || id < 0 || off < 0 || n < 0 {
			t.Errorf("parseBlockRef(%x) = %d, %d, %d; its encoding %x parses to %d, %d, %d, %v", b, id, off, n, back, id2, off2, n2, err)
		}
	})
}

// TestFetchBlocksEach: a lookup's per-id fetch returns exactly what the IN
// fetch returns, for single ids, sets of them, absent ids, a
// duplicate, and more ids than it takes one by one.
func TestFetchBlocksEach(t *testing.T) {
	st, err := Open(filepath.Join(t.TempDir(), "events.duckdb"), Options{BlockBytes: 2048})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	for _, b := range blockRecords(t) {
		if _, err := st.Append(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	var ids []int64
	rows, err := st.db.QueryContext(ctx, `SELECT id FROM record_blocks ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if len(ids) <= maxEachBlocks {
		t.Fatalf("%d blocks: the test needs more than %d", len(ids), maxEachBlocks)
	}
	sets := [][]int64{
		nil, ids[:1], ids[len(ids)-1:], {ids[0], ids[len(ids)/2], ids[len(ids)-1]},
		{ids[0] + 1, -5, 1 << 62}, {ids[1], ids[1]}, ids[:maxEachBlocks], ids[:maxEachBlocks+1], ids,
		everyOther(ids), {ids[len(ids)-1], ids[0], ids[len(ids)/2], ids[0]},
	}
	for _, set := range sets {
		want, err := fetchBlocks(ctx, st.db, set)
		if err != nil {
			t.Fatal(err)
		}
		got, err := fetchBlocksEach(ctx, st.db, set)
		if err != nil {
			t.Fatal(err)
		}
		if !cmp.Equal(got, want, storetest.EquateRecords) {
			t.Fatalf("ids %v: fetchBlocksEach returned %d blocks, fetchBlocks %d", set[:min(len(set), 4)], len(got), len(want))
		}
		// The warm start's ranges: the same blocks, none of the others
		// the ranges hold, with one range a query or many.
		for _, per := range []int{1, 2, warmRangesPerQuery} {
			got, err := fetchBlockRanges(ctx, st.db, set, per)
			if err != nil {
				t.Fatal(err)
			}
			if !cmp.Equal(got, want, storetest.EquateRecords) {
				t.Fatalf("ids %v: fetchBlockRanges (%d a query) returned %d blocks, fetchBlocks %d", set[:min(len(set), 4)], per, len(got), len(want))
			}
		}
	}
}

func everyOther(ids []int64) []int64 {
	var out []int64
	for i := 0; i < len(ids); i += 2 {
		out = append(out, ids[i])
	}
	return out
}

// TestImportBlockSize: an offline import (BeginImport) on a store of the
// default block size fills its blocks to Compact's size (importBlockBytes),
// live appends to the default; a store opened with another size keeps it
// for an import too. Every record comes back byte for byte.
func TestImportBlockSize(t *testing.T) {
	sh := storetest.NewShapes(t, 11)
	base := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	recs := sh.Records(3000, base, base.Add(48*time.Hour), "111111111111", "eu-west-1")
	largest := 0
	for _, r := range recs {
		largest = max(largest, len(frameContent(nil, &r)))
	}
	for _, v := range []struct {
		name    string
		opts    Options
		bulk    bool
		limit   int // blocks hold at most limit plus one record
		atLeast int // the largest block holds more than this
	}{
		{"live", Options{}, false, defaultBlockBytes, 0},
		{"import", Options{}, true, importBlockBytes, defaultBlockBytes + largest},
		{"import, small blocks", Options{BlockBytes: 4096}, true, 4096, 0},
	} {
		t.Run(v.name, func(t *testing.T) {
			st, err := Open(filepath.Join(t.TempDir(), "events.duckdb"), v.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if v.bulk {
				st.BeginImport()
			}
			if _, err := st.Append(context.Background(), recs); err != nil {
				t.Fatal(err)
			}
			rows, err := st.db.Query(`SELECT data FROM record_blocks`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			n, most := 0, 0
			for rows.Next() {
				var data []byte
				if err := rows.Scan(&data); err != nil {
					t.Fatal(err)
				}
				content, err := st.codec.decompressBlock(data)
				if err != nil {
					t.Fatal(err)
				}
				n++
				most = max(most, len(content))
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				t.Fatal("no record blocks")
			}
			if most >= v.limit+largest {
				t.Errorf("a block holds %d bytes; want under %d + one record (%d)", most, v.limit, largest)
			}
			if most <= v.atLeast {
				t.Errorf("the largest block holds %d bytes; want more than %d", most, v.atLeast)
			}
			checkAll(t, st, recs)
		})
	}
}
