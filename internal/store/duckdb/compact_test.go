package duckdb

import (
	"cmp"
	"context"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

// liveFilled returns batches as a server appends them: records of two
// accounts and regions, last year's interleaved with today's.
func liveFilled() [][]audit.Record {
	old := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	g := storetest.NewGen(37, old)
	var batches [][]audit.Record
	for b := range 8 {
		var recs []audit.Record
		for i := range 60 {
			s := storetest.Spec{Time: old.Add(time.Duration(b*60+i) * 7 * time.Minute)}
			if i%3 == 1 {
				s.Account = "222222222222"
			}
			if i%5 == 2 {
				s.Region = "eu-west-1"
			}
			recs = append(recs, g.Record(s))
		}
		// The server's own records of the calls, at today's time.
		for i := range 5 {
			recs = append(recs, g.Record(storetest.Spec{Time: now.Add(time.Duration(b*5+i) * time.Second)}))
		}
		batches = append(batches, recs)
	}
	return batches
}

// TestCompact: a compacted store holds the same records with the same
// sequence numbers (the feed reads them in the same order), in lookup
// order on disk; lookups find each record by each of its values; the saved
// key filter still matches (no rebuild at the next append); appends go on
// after the last sequence number.
func TestCompact(t *testing.T) {
	ctx := context.Background()
	// Several writes and commits in the copy, read in pieces of a few
	// hours, blocks fetched by ranges of one id.
	commitRows, writeBytes, pieceRows, gap := compactCommitRows, compactWriteBytes, compactPieceRows, compactFetchGap
	compactCommitRows, compactWriteBytes, compactPieceRows, compactFetchGap = 100, 64<<10, 30, 0
	t.Cleanup(func() {
		compactCommitRows, compactWriteBytes, compactPieceRows, compactFetchGap = commitRows, writeBytes, pieceRows, gap
	})
	batches := liveFilled()
	st, path := openTemp(t, batches...)
	want, err := st.ReadAppended(ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	res, err := Compact(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != int64(len(want)) || res.BytesAfter <= 0 {
		t.Errorf("Compact = %+v; want %d records", res, len(want))
	}
	for _, p := range []string{path + compactSuffix, path + compactSuffix + ".wal", path + compactSuffix + ".tmp"} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind: %v", p, err)
		}
	}
	st, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	got, err := st.ReadAppended(ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	if diff := gocmp.Diff(want, got, storetest.EquateRecords); diff != "" {
		t.Errorf("the feed after compaction (-before +after):\n%s", diff)
	}
	// Stored in lookup order.
	rows, err := st.db.Query(`SELECT account, region, category, event_time, event_id FROM events ORDER BY rowid`)
	if err != nil {
		t.Fatal(err)
	}
	type key struct {
		a, r string
		c    uint8
		t    int64
		id   string
	}
	var stored []key
	for rows.Next() {
		var k key
		if err := rows.Scan(&k.a, &k.r, &k.c, &k.t, &k.id); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, k)
	}
	rows.Close()
	if !slices.IsSortedFunc(stored, func(x, y key) int {
		return cmp.Or(cmp.Compare(x.a, y.a), cmp.Compare(x.r, y.r), cmp.Compare(x.c, y.c), cmp.Compare(x.t, y.t), cmp.Compare(x.id, y.id))
	}) {
		t.Error("events are not stored in (account, region, category, event_time, event_id) order")
	}
	all := slices.Concat(batches...)
	checkLookups(t, st, all)
	// Appends continue, the saved key filter loaded, not rebuilt.
	more := storetest.NewGen(41, time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)).Records(10)
	more = append(more, all[3]) // a duplicate
	r, err := st.Append(ctx, more)
	if err != nil || r.Inserted != 10 || r.Duplicates != 1 {
		t.Errorf("Append after compaction = %+v, %v; want 10 inserted, 1 duplicate", r, err)
	}
	if n := st.keyFilterBuilds.Load(); n != 0 {
		t.Errorf("the key filter was built %d times after compaction; want it loaded", n)
	}
	after, err := st.ReadAppended(ctx, want[len(want)-1].Seq, 100)
	if err != nil || len(after) != 10 || after[0].Seq != want[len(want)-1].Seq+1 {
		t.Errorf("feed after the last compacted record: %d records, %v", len(after), err)
	}
}

// TestCompactCrash: a compaction that stops before its rename (a crash)
// leaves the old store whole, and a PATH.compact that the next Compact
// replaces.
func TestCompactCrash(t *testing.T) {
	ctx := context.Background()
	st, path := openTemp(t, liveFilled()...)
	want, err := st.ReadAppended(ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	compactHook = func() error { return errors.New("crash") }
	_, err = Compact(ctx, path, Options{})
	compactHook = nil
	if err == nil {
		t.Fatal("Compact with a crash before the rename succeeded")
	}
	// What a crash at that point leaves: a complete new file not yet in
	// place (Compact removed it on the error; put a damaged one there).
	if err := os.WriteFile(path+compactSuffix, []byte("half a file"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.ReadAppended(ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	if diff := gocmp.Diff(want, got, storetest.EquateRecords); diff != "" {
		t.Errorf("the store after a failed compaction (-before +after):\n%s", diff)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Compact(ctx, path, Options{}); err != nil {
		t.Fatalf("Compact after a crashed one: %v", err)
	}
	st, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got, err = st.ReadAppended(ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	if diff := gocmp.Diff(want, got, storetest.EquateRecords); diff != "" {
		t.Errorf("the store after compaction (-before +after):\n%s", diff)
	}
}

// TestCompactedBlocksExpire: after compaction, a block holds records
// received on different days; retention deletes records by their own
// received time, and no remaining record loses its block: every record
// left reads back, and the blocks whose every record went are gone.
func TestCompactedBlocksExpire(t *testing.T) {
	ctx := context.Background()
	day := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	now := day
	opts := Options{Now: func() time.Time { return now }}
	path := t.TempDir() + "/events.duckdb"
	st, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	// The same hours of eventTime, received 12 hours apart: after
	// compaction their records share blocks.
	g := storetest.NewGen(43, time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC))
	var all []audit.Record
	for b := range 6 {
		now = day.Add(time.Duration(b) * 12 * time.Hour)
		var recs []audit.Record
		for i := range 80 {
			recs = append(recs, g.Record(storetest.Spec{Time: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i*6+b) * time.Minute)}))
		}
		if _, err := st.Append(ctx, recs); err != nil {
			t.Fatal(err)
		}
		all = append(all, recs...)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Compact(ctx, path, opts); err != nil {
		t.Fatal(err)
	}
	st, err = Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// Received at day+0h, +12h, +24h: those go; +36h.. stay.
	n, err := st.DeleteReceivedBefore(ctx, day.Add(30*time.Hour))
	if err != nil || n != 3*80 {
		t.Fatalf("DeleteReceivedBefore = %d, %v; want %d", n, err, 3*80)
	}
	got, err := st.ReadAppended(ctx, 0, 10000)
	if err != nil {
		t.Fatalf("reading the records left: %v", err)
	}
	if len(got) != 3*80 {
		t.Errorf("%d records left; want %d", len(got), 3*80)
	}
	checkLookups(t, st, all[3*80:])
	// Every block left is referenced by a record left.
	refs := map[int64]bool{}
	rows, err := st.db.Query(`SELECT ` + refColumns + ` FROM events`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var rec []byte
		var ref rowRef
		if err := rows.Scan(append([]any{&rec}, ref.targets()...)...); err != nil {
			t.Fatal(err)
		}
		f, err := ref.frame(rec)
		if err != nil {
			t.Fatal(err)
		}
		if id, _, _, err := parseBlockRef(f); err == nil {
			refs[id] = true
		}
	}
	rows.Close()
	var blocks, orphans int
	rows, err = st.db.Query(`SELECT id FROM record_blocks`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		blocks++
		if !refs[id] {
			orphans++
		}
	}
	rows.Close()
	if orphans > 0 || blocks == 0 {
		t.Errorf("%d of %d blocks left are referenced by no record left", orphans, blocks)
	}
}
