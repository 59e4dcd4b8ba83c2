package duckdb

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

// toBlobReferences leaves st's table as the versions before the integer
// reference columns wrote it: each block reference in record (frameBlockV1
// and three uvarints, appendBlockRef) and no blk_* columns.
func toBlobReferences(t *testing.T, st *Store) {
	t.Helper()
	rows, err := st.db.Query(`SELECT seq, blk_id, blk_off, blk_len FROM events WHERE blk_id IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	type ref struct {
		seq, id int64
		off, n  int
	}
	var refs []ref
	for rows.Next() {
		var r ref
		if err := rows.Scan(&r.seq, &r.id, &r.off, &r.n); err != nil {
			t.Fatal(err)
		}
		refs = append(refs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(refs) == 0 {
		t.Fatalf("%d rows in blocks, %v", len(refs), err)
	}
	if _, err := st.db.Exec(`CREATE TABLE old_refs (seq BIGINT, record BLOB)`); err != nil {
		t.Fatal(err)
	}
	tx, err := st.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range refs {
		if _, err := tx.Exec(`INSERT INTO old_refs VALUES (?, ?)`, r.seq, appendBlockRef(nil, r.id, r.off, r.n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`UPDATE events SET record = o.record FROM old_refs o WHERE events.seq = o.seq`,
		`DROP TABLE old_refs`,
		`ALTER TABLE events DROP COLUMN blk_id`, `ALTER TABLE events DROP COLUMN blk_off`, `ALTER TABLE events DROP COLUMN blk_len`,
	} {
		if _, err := st.db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
}

// refForms counts the rows whose reference is in record (the form of
// before), in the integer columns, and the rows with frames of their own.
func refForms(t *testing.T, st *Store) (blob, ints, own int) {
	t.Helper()
	if err := st.db.QueryRow(`SELECT count(*) FILTER (WHERE blk_id IS NULL AND record[1:1] = '\x02'::BLOB),
		count(*) FILTER (WHERE blk_id IS NOT NULL AND octet_length(record) = 0),
		count(*) FILTER (WHERE blk_id IS NULL AND record[1:1] <> '\x02'::BLOB) FROM events`).Scan(&blob, &ints, &own); err != nil {
		t.Fatal(err)
	}
	return blob, ints, own
}

func readFeeds(t *testing.T, st *Store) ([]audit.Appended, []audit.RawAppended) {
	t.Helper()
	ctx := context.Background()
	recs, err := st.ReadAppended(ctx, 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := st.ReadRaw(ctx, 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	return recs, raw
}

func sameFeeds(t *testing.T, st *Store, when string, want []audit.Appended, wantRaw []audit.RawAppended) {
	t.Helper()
	got, raw := readFeeds(t, st)
	if diff := cmp.Diff(want, got, storetest.EquateRecords); diff != "" {
		t.Errorf("ReadAppended %s (-want +got):\n%s", when, diff)
	}
	if diff := cmp.Diff(wantRaw, raw, storetest.EquateRecords); diff != "" {
		t.Errorf("ReadRaw %s (-want +got):\n%s", when, diff)
	}
}

// TestBlobReferencesOfBefore: a store written before the integer
// reference columns (every block reference in record) gets the columns at
// Open, in one transaction (a failure midway leaves the old layout, and
// the next Open adds them), and reads as before: the feed, the raw feed
// and lookups by every attribute (bucket directories). Appends then write
// references as integers beside the old rows, and the mixed store reads
// right, across a reopen; a compaction rewrites every row's reference
// into the integer columns, the records unchanged.
func TestBlobReferencesOfBefore(t *testing.T) {
	ctx := context.Background()
	batches := blockRecords(t)
	t0 := time.Now()
	defer func() { t.Logf("took %v", time.Since(t0)) }()
	st, path := openTemp(t, batches[0], batches[1])
	want, wantRaw := readFeeds(t, st)
	if _, ints, own := refForms(t, st); ints == 0 || own == 0 {
		t.Fatalf("the store written holds %d rows with integer references, %d with frames; want both", ints, own)
	}
	toBlobReferences(t, st)
	t.Logf("blob references at %v", time.Since(t0))
	old := eventsColumnNames(t, st)
	if !slices.Equal(old, columns[:len(columns)-len(refCols)]) {
		t.Fatalf("the old layout: %v", old)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// A failure after the first ADD COLUMN: the layout stays the old one.
	adds := 0
	layoutHook = func(q string) error {
		if strings.Contains(q, "ADD COLUMN") {
			if adds++; adds == 2 {
				return errors.New("crash")
			}
		}
		return nil
	}
	_, err := Open(path, Options{})
	layoutHook = nil
	if err == nil || adds != 2 {
		t.Fatalf("Open with a failing migration: %v after %d adds; want an error at the second", err, adds)
	}
	raw, err := openRaw(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := eventsColumnNames(t, &Store{db: raw}); !slices.Equal(got, old) {
		t.Errorf("columns after a failed migration: %v; want %v", got, old)
	}
	raw.Close()

	st, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := eventsColumnNames(t, st); !slices.Equal(got, columns) {
		t.Fatalf("columns after the migration: %v; want %v", got, columns)
	}
	blob, ints, _ := refForms(t, st)
	if blob == 0 || ints != 0 {
		t.Fatalf("after the migration %d rows hold references in record, %d in the integer columns; want all in record", blob, ints)
	}
	sameFeeds(t, st, "after the migration", want, wantRaw)
	checkLookups(t, st, sample(slices.Concat(batches[0], batches[1])))

	t.Logf("migrated and read at %v", time.Since(t0))
	// New rows beside the old.
	if _, err := st.Append(ctx, batches[2]); err != nil {
		t.Fatal(err)
	}
	if blob, ints, _ := refForms(t, st); blob == 0 || ints == 0 {
		t.Fatalf("the mixed store: %d rows with references in record, %d in the integer columns; want both", blob, ints)
	}
	all := slices.Concat(batches...)
	mixed, mixedRaw := readFeeds(t, st)
	if len(mixed) != len(all) || len(mixedRaw) != len(all) {
		t.Fatalf("the mixed store's feeds: %d and %d records; want %d", len(mixed), len(mixedRaw), len(all))
	}
	if diff := cmp.Diff(want, mixed[:len(want)], storetest.EquateRecords); diff != "" {
		t.Errorf("the old rows in the mixed store (-want +got):\n%s", diff)
	}
	for i, a := range mixed[len(want):] {
		if r := batches[2][i]; !slices.Equal(a.Record.Raw, r.Raw) || a.Record.EventID != r.EventID {
			t.Fatalf("new row %d: %s; want %s", i, a.Record.EventID, r.EventID)
		}
	}
	checkLookups(t, st, sample(all))
	st.dirs.clear()
	checkLookups(t, st, sample(all))
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sameFeeds(t, st, "of the mixed store after a reopen", mixed, mixedRaw)
	checkLookups(t, st, sample(all))
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	t.Logf("mixed at %v", time.Since(t0))
	// A compaction rewrites every reference as integers.
	if _, err := Compact(ctx, path, Options{}); err != nil {
		t.Fatal(err)
	}
	st, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if blob, ints, own := refForms(t, st); blob != 0 || own != 0 || ints != len(all) {
		t.Errorf("after the compaction: %d references in record, %d frames, %d integer references; want 0, 0, %d", blob, own, ints, len(all))
	}
	sameFeeds(t, st, "after the compaction", mixed, mixedRaw)
	checkLookups(t, st, sample(all))
}

// sample keeps every 7th record (checkLookups then looks up every 7th of
// those by each of its attributes, at least 100 lookups).
func sample(recs []audit.Record) []audit.Record {
	var out []audit.Record
	for i := 0; i < len(recs); i += 7 {
		out = append(out, recs[i])
	}
	return out
}
