package duckdb

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

// manyDays appends records over about 40 days, a few with rare values.
func manyDays(t *testing.T, st *Store) []audit.Record {
	t.Helper()
	base := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	g := storetest.NewGen(11, base)
	var recs []audit.Record
	for i := range 300 {
		s := storetest.Spec{Time: base.Add(time.Duration(i) * 3 * time.Hour)}
		if i%101 == 7 {
			s.AccessKeyID = "AKIARARE"
		}
		recs = append(recs, g.Record(s))
	}
	if _, err := st.Append(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	return recs
}

// lookupAll pages through q and returns every record.
func lookupAll(t *testing.T, st *Store, q audit.Query) []audit.Record {
	t.Helper()
	var out []audit.Record
	for range 1000 {
		p, err := st.Lookup(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p.Records...)
		if p.Next == nil {
			return out
		}
		q.After = p.Next
	}
	t.Fatal("paging does not end")
	return nil
}

func want(recs []audit.Record, q audit.Query) []audit.Record {
	var out []audit.Record
	for _, r := range recs {
		if q.Matches(&r) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b audit.Record) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return strings.Compare(b.EventID, a.EventID)
	})
	return out
}

// TestBucketIndexRecovery checks that lookups stay right when bucket_index_v1 is
// missing (a store from before it: rebuilt at Open) or damaged (a filter
// that does not decode matches everything).
func TestBucketIndexRecovery(t *testing.T) {
	for name, damage := range map[string]string{
		"missing": `DELETE FROM bucket_index_v1`,
		"damaged": `UPDATE bucket_index_v1 SET bloom = 'not a filter'::BLOB`,
		"empty":   `UPDATE bucket_index_v1 SET bloom = ''::BLOB`,
	} {
		t.Run(name, func(t *testing.T) {
			st, path := openTemp(t)
			recs := manyDays(t, st)
			st = reopenAfter(t, st, path, damage)
			for _, attrs := range [][]audit.Attribute{
				nil,
				{{Key: audit.AttrAccessKeyID, Value: "AKIARARE"}},
				{{Key: audit.AttrEventID, Value: recs[42].EventID}},
			} {
				q := audit.Query{Account: "111111111111", Region: "us-east-1", Category: audit.CategoryManagement, Limit: 20, Attributes: attrs}
				if diff := cmp.Diff(want(recs, q), lookupAll(t, st, q), storetest.EquateRecords); diff != "" {
					t.Errorf("%v: (-want +got):\n%s", attrs, diff)
				}
			}
			// Appending after the repair keeps working.
			if _, err := st.Append(context.Background(), storetest.NewGen(12, time.Now()).Records(5)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestOddQueries: hostile queries return errors or empty pages, never panic.
func TestOddQueries(t *testing.T) {
	st, err := Open(filepath.Join(t.TempDir(), "events.duckdb"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	manyDays(t, st)
	base := audit.Query{Account: "111111111111", Region: "us-east-1", Category: audit.CategoryManagement}
	for _, limit := range []int{0, -1} {
		q := base
		q.Limit = limit
		if _, err := st.Lookup(context.Background(), q); err == nil {
			t.Errorf("Limit %d: no error", limit)
		}
	}
	huge := base
	huge.Limit = int(^uint(0) >> 1)
	if p, err := st.Lookup(context.Background(), huge); err != nil || len(p.Records) != 300 || p.Next != nil {
		t.Errorf("Limit MaxInt = %d records, next %v, %v; want all 300", len(p.Records), p.Next, err)
	}
	far := base
	far.Limit = 5
	far.Start, far.End = time.Date(-5000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(99999, 1, 1, 0, 0, 0, 0, time.UTC)
	far.After = &audit.Cursor{Time: time.Date(99999, 1, 1, 0, 0, 0, 0, time.UTC), EventID: "\uffff'"}
	if p, err := st.Lookup(context.Background(), far); err != nil || len(p.Records) != 5 {
		t.Errorf("far bounds = %d records, %v; want 5", len(p.Records), err)
	}
	odd := audit.Record{Raw: []byte("{}"), Account: "a'b", Region: "\x00", EventID: strings.Repeat("é", 100),
		Time: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), Category: 200, ReadOnly: 9,
		Resources: []audit.Resource{{}, {Name: "x"}}}
	if _, err := st.Append(context.Background(), []audit.Record{odd}); err != nil {
		t.Fatalf("Append of an odd record: %v", err)
	}
	q := audit.Query{Account: odd.Account, Region: odd.Region, Category: odd.Category, Limit: 5}
	if p, err := st.Lookup(context.Background(), q); err != nil || len(p.Records) != 1 || string(p.Records[0].Raw) != "{}" {
		t.Errorf("odd record lookup = %v, %v", p.Records, err)
	}
	if n, err := st.DeleteReceivedBefore(context.Background(), time.Now().Add(time.Hour)); err != nil || n != 301 {
		t.Errorf("DeleteReceivedBefore(in an hour) = %d, %v; want all 301", n, err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := st.Append(context.Background(), storetest.NewGen(1, time.Now()).Records(1)); err == nil {
		t.Error("Append after Close succeeded")
	}
}

// TestReceivedOfOldStore: a store from before received times takes its
// records as received at their eventTime (the retention of that version
// counted from it), and records appended after are received now.
func TestReceivedOfOldStore(t *testing.T) {
	ctx := context.Background()
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	old := storetest.NewGen(14, base).Records(30)
	st, path := openTemp(t, old)
	st = reopenAfter(t, st, path, `ALTER TABLE events DROP COLUMN received`)
	later := storetest.NewGen(15, base).Records(10)
	if _, err := st.Append(ctx, later); err != nil {
		t.Fatal(err)
	}
	cut := old[15].Time
	want := 0
	for _, r := range old {
		if r.Time.Before(cut) {
			want++
		}
	}
	if n, err := st.DeleteReceivedBefore(ctx, cut); err != nil || n != int64(want) {
		t.Errorf("DeleteReceivedBefore(an old eventTime) = %d, %v; want %d (the old records before it)", n, err, want)
	}
	got, err := st.ReadAppended(ctx, 0, 1000)
	if err != nil || len(got) != len(old)-want+len(later) {
		t.Errorf("after the delete: %d records, %v; want %d", len(got), err, len(old)-want+len(later))
	}
}

// TestNumberingOldStore: a store from before sequence numbers gets them at
// Open, in stored order, and appends continue after them.
func TestNumberingOldStore(t *testing.T) {
	ctx := context.Background()
	g := storetest.NewGen(13, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	first, second := g.Records(30), g.Records(20)
	st, path := openTemp(t, first, second)
	st = reopenAfter(t, st, path, `ALTER TABLE events DROP COLUMN seq`)
	third := g.Records(5)
	if _, err := st.Append(ctx, third); err != nil {
		t.Fatal(err)
	}
	got, err := st.ReadAppended(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var wantIDs, gotIDs []string
	for _, r := range slices.Concat(first, second, third) {
		wantIDs = append(wantIDs, r.EventID)
	}
	for i, a := range got {
		gotIDs = append(gotIDs, a.Record.EventID)
		if i > 0 && a.Seq <= got[i-1].Seq {
			t.Fatalf("seq %d after %d", a.Seq, got[i-1].Seq)
		}
	}
	if diff := cmp.Diff(wantIDs, gotIDs); diff != "" {
		t.Errorf("order after numbering (-want +got):\n%s", diff)
	}
}

// TestOldStoreGetsHashColumns: a store from before the hash columns gets
// them at Open, with the values Append writes, and keeps its row order.
func TestOldStoreGetsHashColumns(t *testing.T) {
	ctx := context.Background()
	g := storetest.NewGen(17, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	recs := g.Records(300)
	st, path := openTemp(t, recs)
	dump := func() []string {
		t.Helper()
		rows, err := st.db.QueryContext(ctx, `SELECT rowid, seq, event_id, coalesce(akid_hash::VARCHAR, '-'), coalesce(user_hash::VARCHAR, '-'), coalesce(res_hashes::VARCHAR, '-') FROM events ORDER BY rowid`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var (
				rowid, seq          int64
				id, akid, user, res string
			)
			if err := rows.Scan(&rowid, &seq, &id, &akid, &user, &res); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprint(rowid, seq, id, akid, user, res))
		}
		return out
	}
	want := dump()
	var withHashes int
	for _, r := range recs {
		if r.AccessKeyID != "" && r.Username != "" && len(r.Resources) > 0 {
			withHashes++
		}
	}
	if withHashes == 0 {
		t.Fatal("no generated record has an access key, a user name and resources")
	}
	addStringColumns(t, st, recs) // as such a store has them
	st = reopenAfter(t, st, path, `ALTER TABLE events DROP COLUMN akid_hash; ALTER TABLE events DROP COLUMN user_hash; ALTER TABLE events DROP COLUMN res_hashes`)
	if diff := cmp.Diff(want, dump()); diff != "" {
		t.Errorf("hash columns after the rewrite (-appended +rewritten):\n%s", diff)
	}
	r := recs[len(recs)/2]
	for _, a := range []audit.Attribute{{Key: audit.AttrAccessKeyID, Value: r.AccessKeyID}, {Key: audit.AttrUsername, Value: r.Username}} {
		p, err := st.Lookup(ctx, audit.Query{Account: r.Account, Region: r.Region, Category: r.Category, Limit: 1000, Attributes: []audit.Attribute{a}})
		if err != nil || !slices.ContainsFunc(p.Records, func(x audit.Record) bool { return x.EventID == r.EventID }) {
			t.Errorf("lookup %v after the rewrite: %d records, %v", a, len(p.Records), err)
		}
	}
}

// TestOldLayoutRewritten: a store whose raw column held the JSON alone,
// without the hash columns, is rewritten at Open into this version's
// layout, and reads back the same records.
func TestOldLayoutRewritten(t *testing.T) {
	ctx := context.Background()
	g := storetest.NewGen(19, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	recs := g.Records(200)
	st, path := openTemp(t, recs)
	want, err := st.ReadAppended(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	// The layout of before: raw = zstd(JSON), no record, no hash columns.
	if _, err := st.db.Exec(`ALTER TABLE events ADD COLUMN raw BLOB`); err != nil {
		t.Fatal(err)
	}
	for _, a := range want {
		if _, err := st.db.Exec(`UPDATE events SET raw = ? WHERE event_id = ?`, st.codec.compress(nil, a.Record.Raw), a.Record.EventID); err != nil {
			t.Fatal(err)
		}
	}
	addStringColumns(t, st, recs)
	var drops []string
	for _, c := range []string{"record", "akid_hash", "user_hash", "res_hashes"} {
		drops = append(drops, `ALTER TABLE events DROP COLUMN `+c)
	}
	st = reopenAfter(t, st, path, drops...)
	got, err := st.ReadAppended(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, storetest.EquateRecords); diff != "" {
		t.Errorf("records after the rewrite (-before +after):\n%s", diff)
	}
	var withResources int
	for _, a := range got {
		if len(a.Record.Resources) > 0 && a.Record.Username != "" {
			withResources++
		}
	}
	if withResources == 0 {
		t.Error("no record with resources and a user name: the test shows nothing")
	}
}

// TestHashCollisions narrows the tokens and key hashes to two bits, so that
// every hashed attribute (EventId, Username, AccessKeyId, ResourceType,
// ResourceName) collides with a quarter of the records: lookups filter by
// hash in SQL and must confirm each row, and a page that dropped rows must
// be filled from the rows after them.
func TestHashCollisions(t *testing.T) {
	defer func(m uint64) { tokenMask = m }(tokenMask)
	tokenMask = 3
	st, err := Open(filepath.Join(t.TempDir(), "events.duckdb"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs := manyDays(t, st)
	base := audit.Query{Account: "111111111111", Region: "us-east-1", Category: audit.CategoryManagement}
	var qs []audit.Query
	add := func(k audit.AttributeKey, v string) {
		q := base
		q.Attributes = []audit.Attribute{{Key: k, Value: v}}
		qs = append(qs, q)
	}
	for _, r := range recs[:10] {
		add(audit.AttrEventID, r.EventID)
		add(audit.AttrUsername, r.Username)
		add(audit.AttrAccessKeyID, r.AccessKeyID)
		for _, x := range r.Resources {
			add(audit.AttrResourceType, x.Type)
			add(audit.AttrResourceName, x.Name)
			add(audit.AttrResourceName, x.ARN)
		}
	}
	add(audit.AttrAccessKeyID, "AKIARARE")
	add(audit.AttrUsername, "nobody")
	q := base
	q.Attributes = []audit.Attribute{{Key: audit.AttrUsername, Value: recs[0].Username}, {Key: audit.AttrAccessKeyID, Value: recs[0].AccessKeyID}}
	qs = append(qs, q)
	matched := 0
	for _, q := range qs {
		if q.Attributes[0].Value == "" {
			continue
		}
		for _, limit := range []int{3, 50} {
			q.Limit = limit
			got, exp := lookupAll(t, st, q), want(recs, q)
			matched += len(exp)
			if diff := cmp.Diff(ids(exp), ids(got)); diff != "" {
				t.Fatalf("%v limit %d (-want +got):\n%s", q.Attributes, limit, diff)
			}
		}
	}
	if matched == 0 {
		t.Fatal("no query matched anything")
	}
}

func ids(recs []audit.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.EventID
	}
	return out
}

// openTemp opens a new store in a temporary directory and appends batches
// to it; it returns the store and its path.
func openTemp(t *testing.T, batches ...[]audit.Record) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "events.duckdb")
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range batches {
		if _, err := st.Append(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	return st, path
}

// reopenAfter runs stmts on st (leaving the store as an earlier version,
// or a damage, would), closes it and opens path again. The store returned
// is closed when the test ends.
func reopenAfter(t *testing.T, st *Store, path string, stmts ...string) *Store {
	t.Helper()
	for _, q := range stmts {
		if _, err := st.db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestBucketIndexBatchedWrites: batches that each touch many hours of
// several accounts and regions, and come back to the same hours with new
// values (so filters fill and are rebuilt, many in one query), leave the
// bucket index as a rebuild from the rows makes it — the counts in memory
// and in bucket_index_v1 — and every record found by each of its values,
// before and after a reopen.
func TestBucketIndexBatchedWrites(t *testing.T) {
	st, path := openTemp(t)
	base := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	g := storetest.NewGen(21, base)
	parts := [][2]string{{"111111111111", "us-east-1"}, {"111111111111", "eu-west-1"}, {"222222222222", "us-east-1"}}
	var recs []audit.Record
	for batch := range 6 {
		var b []audit.Record
		for i := range 400 {
			p := parts[(i+batch)%len(parts)]
			r := g.Record(storetest.Spec{Account: p[0], Region: p[1],
				Time:        base.Add(time.Duration(i%20) * time.Hour),
				AccessKeyID: fmt.Sprintf("AKIA%d%05d", batch, i), // a new value in every record: filters fill
				EventName:   fmt.Sprintf("Op%d", i%(40*(batch+1)))})
			b = append(b, r)
		}
		if _, err := st.Append(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, b...)
	}
	// table: bucket_index_v1 is compared too (it is written every few
	// transactions and at Close, so after a reopen).
	check := func(st *Store, table bool) {
		t.Helper()
		counts := func(q string) map[string]int64 {
			rows, err := st.db.Query(q)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			out := map[string]int64{}
			for rows.Next() {
				var a, r string
				var c uint8
				var d, n int64
				if err := rows.Scan(&a, &r, &c, &d, &n); err != nil {
					t.Fatal(err)
				}
				k := fmt.Sprint(a, r, c, d)
				if _, dup := out[k]; dup {
					t.Errorf("%s: two rows for %s", q, k)
				}
				out[k] = n
			}
			return out
		}
		fromRows := counts(`SELECT account, region, category, floor(event_time / 3600)::BIGINT, count(*) FROM events GROUP BY ALL`)
		if diff := cmp.Diff(fromRows, counts(`SELECT account, region, category, day, n FROM bucket_index_v1`)); table && diff != "" {
			t.Errorf("bucket_index_v1 counts (-rows +table):\n%s", diff)
		}
		mem := map[string]int64{}
		st.index.mu.RLock()
		for k, days := range st.index.parts {
			for d, sum := range days {
				mem[fmt.Sprint(k.account, k.region, uint8(k.category), d)] = sum.n
			}
		}
		st.index.mu.RUnlock()
		if diff := cmp.Diff(fromRows, mem); diff != "" {
			t.Errorf("in-memory counts (-rows +memory):\n%s", diff)
		}
		for i := 0; i < len(recs); i += 211 {
			r := recs[i]
			for _, a := range []audit.Attribute{{Key: audit.AttrAccessKeyID, Value: r.AccessKeyID}, {Key: audit.AttrEventName, Value: r.EventName}} {
				q := audit.Query{Account: r.Account, Region: r.Region, Category: r.Category, Limit: 50, Attributes: []audit.Attribute{a}}
				if diff := cmp.Diff(want(recs, q), lookupAll(t, st, q), storetest.EquateRecords); diff != "" {
					t.Fatalf("%s/%s %v: (-want +got):\n%s", r.Account, r.Region, a, diff)
				}
			}
		}
	}
	check(st, false)
	check(reopenAfter(t, st, path), true)
}
