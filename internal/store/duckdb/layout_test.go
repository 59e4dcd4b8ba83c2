package duckdb

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

// addStringColumns gives st's events the string columns of the versions
// before droppedColumns went, filled as those versions filled them.
func addStringColumns(t *testing.T, st *Store, recs []audit.Record) {
	t.Helper()
	for _, q := range []string{
		`ALTER TABLE events ADD COLUMN username VARCHAR`, `ALTER TABLE events ADD COLUMN access_key_id VARCHAR`,
		`ALTER TABLE events ADD COLUMN resource_types VARCHAR[]`, `ALTER TABLE events ADD COLUMN resource_names VARCHAR[]`,
		`ALTER TABLE events ADD COLUMN resource_arns VARCHAR[]`,
	} {
		if _, err := st.db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range recs {
		var types, names, arns []string
		for _, x := range r.Resources {
			types, names, arns = append(types, x.Type), append(names, x.Name), append(arns, x.ARN)
		}
		if _, err := st.db.Exec(`UPDATE events SET username = ?, access_key_id = ?, resource_types = ?::VARCHAR[],
			resource_names = ?::VARCHAR[], resource_arns = ?::VARCHAR[] WHERE account = ? AND event_id = ?`,
			nullable(r.Username), nullable(r.AccessKeyID), nullList(types), nullList(names), nullList(arns), r.Account, r.EventID); err != nil {
			t.Fatal(err)
		}
	}
}

func nullList(v []string) any {
	if v == nil {
		return nil
	}
	return v
}

func eventsColumnNames(t *testing.T, st *Store) []string {
	t.Helper()
	rows, err := st.db.Query(`SELECT column_name FROM duckdb_columns() WHERE table_name = 'events' ORDER BY column_index`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// TestStringColumnsDropped: a store of the layout before (the string
// columns username, access_key_id and resource_*) loses them at Open, in
// one transaction: a migration that fails midway (as a crash would) leaves
// the store as it was, readable by the version before, and the next Open
// drops them. Records, the feed and lookups by every attribute are the
// same after.
func TestStringColumnsDropped(t *testing.T) {
	ctx := context.Background()
	g := storetest.NewGen(23, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	recs := g.Records(400)
	st, path := openTemp(t, recs)
	want, err := st.ReadAppended(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	addStringColumns(t, st, recs)
	old := eventsColumnNames(t, st)
	if len(old) != len(columns)+len(droppedColumns) {
		t.Fatalf("the old layout has %d columns: %v", len(old), old)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// A failure after the first DROP COLUMN: nothing is dropped.
	drops := 0
	layoutHook = func(q string) error {
		if strings.Contains(q, "DROP COLUMN") {
			if drops++; drops == 2 {
				return errors.New("crash")
			}
		}
		return nil
	}
	_, err = Open(path, Options{})
	layoutHook = nil
	if err == nil || drops != 2 {
		t.Fatalf("Open with a failing migration: %v after %d drops; want an error at the second", err, drops)
	}
	st, err = Open(path+"", Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if got := eventsColumnNames(t, st); !slices.Equal(got, columns) {
		t.Fatalf("columns after the migration: %v; want %v", got, columns)
	}
	got, err := st.ReadAppended(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, storetest.EquateRecords); diff != "" {
		t.Errorf("records after the migration (-before +after):\n%s", diff)
	}
	checkLookups(t, st, recs)
}

// TestFailedMigrationLeavesTheOldLayout: the store a failed migration
// leaves has every old column and row (the transaction rolled back).
func TestFailedMigrationLeavesTheOldLayout(t *testing.T) {
	g := storetest.NewGen(29, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	recs := g.Records(50)
	st, path := openTemp(t, recs)
	addStringColumns(t, st, recs)
	old := eventsColumnNames(t, st)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	layoutHook = func(q string) error {
		if q == `COMMIT` {
			return errors.New("crash before the commit")
		}
		return nil
	}
	_, err := Open(path, Options{})
	layoutHook = nil
	if err == nil {
		t.Fatal("Open with a failing migration succeeded")
	}
	// Read the file as it is, without migrating it.
	s2, err := openRaw(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	got := eventsColumnNames(t, &Store{db: s2})
	if !slices.Equal(got, old) {
		t.Errorf("columns after a failed migration: %v; want %v", got, old)
	}
	var n, users int
	if err := s2.QueryRow(`SELECT count(*), count(username) FROM events`).Scan(&n, &users); err != nil || n != len(recs) || users == 0 {
		t.Errorf("rows after a failed migration: %d (%d with a user name), %v; want %d", n, users, err, len(recs))
	}
}

// TestLaterLayoutRefused: a store whose events table has a column this
// version does not know (a later version's) is refused at Open and left
// as it is, rows and columns: rewriting it into this version's columns
// would drop what the later version keeps there (an earlier cairn did
// that to the integer block references).
func TestLaterLayoutRefused(t *testing.T) {
	g := storetest.NewGen(37, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	recs := g.Records(50)
	st, path := openTemp(t, recs)
	if _, err := st.db.Exec(`ALTER TABLE events ADD COLUMN later_col BIGINT`); err != nil {
		t.Fatal(err)
	}
	later := eventsColumnNames(t, st)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Options{}); err == nil || !strings.Contains(err.Error(), "later_col") {
		t.Fatalf("Open of a later version's store: %v; want it refused, naming the column", err)
	}
	raw, err := openRaw(path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if got := eventsColumnNames(t, &Store{db: raw}); !slices.Equal(got, later) {
		t.Errorf("columns after the refusal: %v; want %v", got, later)
	}
	var n int
	if err := raw.QueryRow(`SELECT count(*) FROM events WHERE octet_length(record) > 0 OR blk_id IS NOT NULL`).Scan(&n); err != nil || n != len(recs) {
		t.Errorf("rows with their frames after the refusal: %d, %v; want %d", n, err, len(recs))
	}
}

// TestIndexRebuiltFromHashes: a bucket index rebuilt from the table (from
// the hash columns, without the strings) holds every token of every
// record, and lookups by every attribute find each record.
func TestIndexRebuiltFromHashes(t *testing.T) {
	g := storetest.NewGen(31, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	recs := g.Records(500)
	st, path := openTemp(t, recs)
	st = reopenAfter(t, st, path, `DELETE FROM bucket_index_v1`, `DELETE FROM bucket_index_v1_seq`)
	var toks []uint64
	for i := range recs {
		r := &recs[i]
		sum := st.index.parts[partKey{r.Account, r.Region, r.Category}][bucketOf(r.Time.Unix())]
		if sum == nil {
			t.Fatalf("record %s: no bucket after the rebuild", r.EventID)
		}
		toks = recordTokens(toks[:0], r)
		for _, tok := range toks {
			if !sum.bloom.has(tok) {
				t.Fatalf("record %s: token %x missing from its rebuilt bucket", r.EventID, tok)
			}
		}
	}
	checkLookups(t, st, recs)
}

// checkLookups looks every 7th record up by each of its values.
func checkLookups(t *testing.T, st *Store, recs []audit.Record) {
	t.Helper()
	checked := 0
	for i := 0; i < len(recs); i += 7 {
		r := recs[i]
		attrs := []audit.Attribute{{Key: audit.AttrEventID, Value: r.EventID}, {Key: audit.AttrEventName, Value: r.EventName}}
		if r.Username != "" {
			attrs = append(attrs, audit.Attribute{Key: audit.AttrUsername, Value: r.Username})
		}
		if r.AccessKeyID != "" {
			attrs = append(attrs, audit.Attribute{Key: audit.AttrAccessKeyID, Value: r.AccessKeyID})
		}
		for _, x := range r.Resources {
			if x.Name != "" {
				attrs = append(attrs, audit.Attribute{Key: audit.AttrResourceName, Value: x.Name})
			}
			if x.Type != "" {
				attrs = append(attrs, audit.Attribute{Key: audit.AttrResourceType, Value: x.Type})
			}
		}
		for _, a := range attrs {
			q := audit.Query{Account: r.Account, Region: r.Region, Category: r.Category, Limit: 1000,
				Start: r.Time, End: r.Time, Attributes: []audit.Attribute{a}}
			got := lookupAll(t, st, q)
			if !slices.ContainsFunc(got, func(x audit.Record) bool { return x.EventID == r.EventID }) {
				t.Errorf("lookup %v: %d records, not %s", a, len(got), r.EventID)
			}
			checked++
		}
	}
	if checked < 100 {
		t.Errorf("%d lookups checked: the generated records have too few values", checked)
	}
}

// openRaw opens a store's file with DuckDB alone, without migrating it.
func openRaw(path string) (*sql.DB, error) { return sql.Open("duckdb", path) }
