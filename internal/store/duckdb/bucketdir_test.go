package duckdb

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

// TestLookupsFromDirsAsTable: lookups answered from bucket directories
// (Store.fromDirs, no tail) return the pages a store without directories
// returns (answered by SQL), page for page and cursor for cursor: several
// accounts, regions and categories (each lookup sees its own only),
// sub-second and non-UTC times, records sharing a second, duplicates,
// buckets appended to after their directory was read, a directory budget
// too small for every bucket, every attribute kind, time bounds, cursors
// and ReceivedSince, after a restart, a compaction and retention. It also
// checks that the directories answered: the second pass over the same
// lookups runs fewer queries than the store without them.
func TestLookupsFromDirsAsTable(t *testing.T) {
	ctx := context.Background()
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	clock := base.Add(48 * time.Hour)
	now := func() time.Time { return clock }
	dir := t.TempDir()
	paths := []string{filepath.Join(dir, "sql.duckdb"), filepath.Join(dir, "dirs.duckdb"), filepath.Join(dir, "small.duckdb"),
		filepath.Join(dir, "step.duckdb"), filepath.Join(dir, "tailstep.duckdb")}
	opts := []Options{
		{TailBytes: -1, BucketDirBytes: -1, Now: now},
		{TailBytes: -1, Now: now},
		{TailBytes: -1, BucketDirBytes: 24 << 10, Now: now}, // a few buckets at a time
		// The bucket index asked for one hour at first, then 4, 16...
		// (Lookup's maxBuckets), from the directories, and with the tail.
		{TailBytes: -1, Now: now, firstBuckets: 1},
		{Now: now, firstBuckets: 2},
	}
	stores := make([]*Store, len(paths))
	open := func() {
		for i := range paths {
			st, err := Open(paths[i], opts[i])
			if err != nil {
				t.Fatal(err)
			}
			stores[i] = st
		}
	}
	closeAll := func() {
		for _, st := range stores {
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	open()
	defer func() {
		for _, st := range stores {
			st.Close()
		}
	}()
	appendAll := func(recs []audit.Record) {
		t.Helper()
		for _, st := range stores {
			if _, err := st.Append(ctx, recs); err != nil {
				t.Fatal(err)
			}
		}
	}
	g := storetest.NewGen(47, base)
	shapes := storetest.NewShapes(t, 7)
	var all []audit.Record
	batch := func(b int) []audit.Record {
		var recs []audit.Record
		hour := base.Add(time.Duration(b/2) * time.Hour)
		if b%3 == 0 {
			recs = shapes.Records(60, hour, hour.Add(time.Hour), "111111111111", "us-east-1")
		} else {
			for i := range 60 {
				s := storetest.Spec{Time: hour.Add(time.Duration(i%20) * time.Minute), NoReadOnly: i%9 == 0, Service: i%11 == 0}
				switch i % 7 {
				case 1:
					s.Account = "222222222222"
				case 2:
					s.Region = "eu-west-1"
				case 3:
					s.Category = audit.CategoryData
				case 4:
					s.AccessKeyID = "AKIADIRS"
				}
				if i%13 == 0 {
					s.EventName = "RareDirEvent"
				}
				recs = append(recs, g.Record(s))
			}
		}
		for i := range recs {
			switch i % 5 {
			case 1:
				recs[i].Time = recs[i].Time.Add(612 * time.Millisecond)
			case 2:
				recs[i].Time = recs[i].Time.In(time.FixedZone("x", -7*3600))
			case 3:
				recs[i].Time = recs[i].Time.Add(-1 * time.Hour) // another bucket, out of order
			case 4:
				recs[i].Time = recs[i-1].Time // shares a second
			}
		}
		if len(all) > 0 {
			recs = append(recs, all[len(all)-3], recs[0]) // duplicates across and within batches
		}
		return recs
	}
	check := func(stage string) {
		t.Helper()
		mid := base.Add(5*time.Hour + 17*time.Minute)
		queries := []audit.Query{
			{},
			{Attributes: []audit.Attribute{{Key: audit.AttrReadOnly, Value: "false"}}},
			{Attributes: []audit.Attribute{{Key: audit.AttrReadOnly, Value: "true"}}},
			{Attributes: []audit.Attribute{{Key: audit.AttrEventName, Value: "RareDirEvent"}}},
			{Attributes: []audit.Attribute{{Key: audit.AttrEventName, Value: all[4].EventName}}},
			{Attributes: []audit.Attribute{{Key: audit.AttrAccessKeyID, Value: "AKIADIRS"}}},
			{Attributes: []audit.Attribute{{Key: audit.AttrUsername, Value: all[7].Username}}},
			{Attributes: []audit.Attribute{{Key: audit.AttrEventSource, Value: all[9].EventSource}}},
			{Attributes: []audit.Attribute{{Key: audit.AttrEventID, Value: all[len(all)-5].EventID}}},
			{Attributes: []audit.Attribute{{Key: audit.AttrEventID, Value: all[1].EventID}}},
			{Attributes: []audit.Attribute{{Key: audit.AttrResourceType, Value: "AWS::S3::Bucket"}}},
			{Attributes: []audit.Attribute{{Key: audit.AttrResourceName, Value: "bucket-3"}}},
			{Attributes: []audit.Attribute{{Key: audit.AttrEventName, Value: "NoSuchEvent"}}},
			{End: mid},
			{Start: mid, End: mid.Add(2 * time.Hour)},
			{Start: mid.Add(3 * time.Minute), End: mid.Add(3 * time.Minute)},
			{ReceivedSince: clock.Add(-3 * time.Minute)},
		}
		parts := []partKey{
			{"111111111111", "us-east-1", audit.CategoryManagement},
			{"222222222222", "us-east-1", audit.CategoryManagement},
			{"111111111111", "eu-west-1", audit.CategoryManagement},
			{"111111111111", "us-east-1", audit.CategoryData},
		}
		for i, q := range queries {
			for _, part := range parts {
				for _, limit := range []int{3, 50} {
					q := q
					q.Account, q.Region, q.Category, q.Limit = part.account, part.region, part.category, limit
					for page := 0; ; page++ {
						want, err := stores[0].Lookup(ctx, q)
						if err != nil {
							t.Fatal(err)
						}
						for j, st := range stores[1:] {
							got, err := st.Lookup(ctx, q)
							if err != nil {
								t.Fatal(err)
							}
							if samePage(want, got) {
								continue
							}
							if diff := gocmp.Diff(want, got, storetest.EquateRecords); diff != "" {
								t.Fatalf("%s: store %d query %d %v limit %d page %d: (-sql +dirs):\n%s", stage, j+1, i, part, limit, page, diff)
							}
						}
						for _, r := range want.Records {
							if r.Account != part.account || r.Region != part.region || r.Category != part.category {
								t.Fatalf("%s: query %d %v: a record of %s %s %d", stage, i, part, r.Account, r.Region, r.Category)
							}
						}
						if want.Next == nil || page > 3 {
							break
						}
						q.After = want.Next
					}
				}
			}
		}
	}
	countQueries := func(f func()) (sql, dirs int64) {
		s0, d0 := stores[0].queries.Load(), stores[1].queries.Load()
		f()
		return stores[0].queries.Load() - s0, stores[1].queries.Load() - d0
	}
	for b := range 16 {
		recs := batch(b)
		appendAll(recs)
		all = append(all, recs...)
		clock = clock.Add(time.Minute)
		if b == 9 {
			check(fmt.Sprintf("after batch %d", b)) // directories read, then appended to
		}
	}
	check("after the appends")
	sq, dq := countQueries(func() { check("again") })
	if dq >= sq {
		t.Errorf("queries with directories %d, without %d: the directories answered nothing", dq, sq)
	}
	t.Logf("queries with directories %d, without %d", dq, sq)
	// A restart starts with no directory, and an empty tail: the
	// directories read then are whole again after appends to their
	// buckets with the tail's records of those appends (dirSince).
	closeAll()
	open()
	check("after a restart")
	for i := range 2 {
		recs := batch(14 + i)
		for j := range recs {
			recs[j].EventID = fmt.Sprintf("restart-%d-%03d", i, j)
		}
		appendAll(recs)
		all = append(all, recs...)
		check(fmt.Sprintf("appended after a restart (%d)", i))
	}
	// A compaction rewrites the rows and their blocks.
	closeAll()
	for _, p := range paths {
		if _, err := Compact(ctx, p, Options{Now: now}); err != nil {
			t.Fatal(err)
		}
	}
	open()
	check("after a compaction")
	recs := batch(15)
	for i := range recs {
		recs[i].EventID = fmt.Sprintf("again-%03d", i)
	}
	appendAll(recs)
	all = append(all, recs...)
	check("appended after the compaction")
	// Retention deletes rows of buckets whose directories are held.
	clock = clock.Add(time.Hour)
	for _, st := range stores {
		if _, err := st.DeleteReceivedBefore(ctx, clock.Add(-70*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	check("after retention")
	appendAll(batch(16))
	check("appended after retention")
	for b := 20; b < 26; b += 2 {
		recs := batch(b)
		slices.SortStableFunc(recs, func(x, y audit.Record) int { return cmp.Compare(x.Time.Unix(), y.Time.Unix()) })
		appendAll(recs)
		all = append(all, recs...)
	}
	check("in time order")
	if stores[1].dirs.loaded() == 0 {
		t.Error("no directory was read")
	}
}

// samePage reports whether two pages are equal (gocmp explains when not:
// it is too slow to run on every page).
func samePage(a, b audit.Page) bool {
	if len(a.Records) != len(b.Records) || (a.Next == nil) != (b.Next == nil) || a.Next != nil && !reflect.DeepEqual(*a.Next, *b.Next) {
		return false
	}
	for i := range a.Records {
		x, y := &a.Records[i], &b.Records[i]
		if !bytes.Equal(x.Raw, y.Raw) || !x.Time.Equal(y.Time) || x.Time.Location() != y.Time.Location() {
			return false
		}
		xc, yc := *x, *y
		xc.Raw, yc.Raw, xc.Time, yc.Time = nil, nil, time.Time{}, time.Time{}
		if !reflect.DeepEqual(xc, yc) {
			return false
		}
	}
	return true
}

// TestReadDirsAsOneByOne: the directories of several buckets read in one
// query (readDirs, with hours between them not asked for, an hour without
// rows, and the oldest and newest hours) are those read one bucket at a
// time; and a rare value's lookup, whose candidates are many hours, reads
// their directories ahead, several a query, and returns the pages of a
// store without directories.
func TestReadDirsAsOneByOne(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := Open(filepath.Join(dir, "dirs.duckdb"), Options{TailBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ref, err := Open(filepath.Join(dir, "sql.duckdb"), Options{TailBytes: -1, BucketDirBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	// Three records an hour for 300 hours; the rare key in one hour of 4
	// (of those that name a caller).
	base := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	g := storetest.NewGen(5, base)
	var recs []audit.Record
	for i := range 900 {
		s := storetest.Spec{Time: base.Add(time.Duration(i) * 20 * time.Minute)}
		if i%12 == 5 {
			s.AccessKeyID = "AKIARARE"
		}
		recs = append(recs, g.Record(s))
	}
	for _, x := range []*Store{st, ref} {
		if _, err := x.Append(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	k := partKey{recs[0].Account, recs[0].Region, recs[0].Category}
	newest, oldest := bucketOf(recs[len(recs)-1].Time.Unix()), bucketOf(recs[0].Time.Unix())
	ds := []int64{newest + 5, newest, newest - 1, newest - 3, newest - 40, oldest + 3, oldest}
	xs, err := st.readDirs(ctx, k, ds)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range ds {
		one, err := st.readDir(ctx, k, d)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(xs[i], one) {
			t.Errorf("bucket %d: read with others %+v, alone %+v", d, xs[i], one)
		}
		if want := 3; d <= newest && d >= oldest && xs[i].len() != want {
			t.Errorf("bucket %d: %d rows, want %d", d, xs[i].len(), want)
		}
	}
	st.dirs.clear()

	q := audit.Query{Account: k.account, Region: k.region, Category: k.category, Limit: 50,
		Attributes: []audit.Attribute{{Key: audit.AttrAccessKeyID, Value: "AKIARARE"}}}
	q0, d0 := st.queries.Load(), st.dirs.loaded()
	got := lookupAll(t, st, q)
	queries, dirs := st.queries.Load()-q0, st.dirs.loaded()-d0
	want := lookupAll(t, ref, q)
	if len(want) <= 50 || !reflect.DeepEqual(recordKeys(got), recordKeys(want)) {
		t.Fatalf("rare value: %d records from the directories, %d from SQL (want the same, more than a page)", len(got), len(want))
	}
	// A candidate hour for each match at least (the generator leaves
	// the key out of its service events), read a few queries at a time
	// (one query each before).
	if dirs < int64(len(want)) || queries*4 > dirs {
		t.Errorf("the rare value's pages read %d directories in %d queries", dirs, queries)
	}
	q.Attributes = nil
	q.Limit = 7
	if got, want := lookupAll(t, st, q), lookupAll(t, ref, q); len(want) != len(recs) || !reflect.DeepEqual(recordKeys(got), recordKeys(want)) {
		t.Fatalf("every record: %d from the directories, %d from SQL", len(got), len(want))
	}
}

func recordKeys(recs []audit.Record) []string {
	var ks []string
	for _, r := range recs {
		ks = append(ks, r.EventID+" "+r.Time.UTC().String()+" "+string(r.Raw))
	}
	return ks
}

// TestDirWholeWithTheTailAfterRestart: after a restart (the tail empty),
// a bucket's directory read before appends to that bucket is not read
// again after them: with the tail's records of the appends it answers,
// page for page as SQL does (a store without directories nor tail),
// while those records are newest, older, in the same second, and the
// lookup's page ends among either; and a lookup that comes while the
// index counts an append not committed yet leaves the bucket to SQL
// without reading the directory again (which would find it not whole and
// send every lookup of the bucket to SQL until its next append). Before,
// a restarted server read its newest hour's directory again after each
// of its own appends: 10-40 ms a lookup at 1M records
// (docs/benchmarks.md, "Session 20").
func TestDirWholeWithTheTailAfterRestart(t *testing.T) {
	ctx := context.Background()
	base := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	clock := base.Add(2 * time.Hour)
	now := func() time.Time { return clock }
	dir := t.TempDir()
	sqlPath, dirsPath := filepath.Join(dir, "sql.duckdb"), filepath.Join(dir, "dirs.duckdb")
	var ref, st *Store
	open := func() {
		var err error
		if ref, err = Open(sqlPath, Options{TailBytes: -1, BucketDirBytes: -1, Now: now}); err != nil {
			t.Fatal(err)
		}
		if st, err = Open(dirsPath, Options{Now: now}); err != nil {
			t.Fatal(err)
		}
	}
	open()
	defer func() { ref.Close(); st.Close() }()
	g := storetest.NewGen(91, base)
	const acct, region = "111111111111", "us-east-1"
	appendBoth := func(recs []audit.Record) {
		t.Helper()
		for _, s := range []*Store{ref, st} {
			if _, err := s.Append(ctx, recs); err != nil {
				t.Fatal(err)
			}
		}
	}
	// One hour's bucket, read-only and not, a rare name among them.
	mk := func(n int, at func(i int) time.Time, prefix string) []audit.Record {
		recs := make([]audit.Record, n)
		for i := range recs {
			sp := storetest.Spec{Account: acct, Region: region, Time: at(i), NoReadOnly: i%4 == 0}
			if i%9 == 0 {
				sp.EventName = "RareAfterRestart"
			}
			recs[i] = g.Record(sp)
			recs[i].EventID = fmt.Sprintf("%s-%04d", prefix, i)
		}
		return recs
	}
	appendBoth(mk(300, func(i int) time.Time { return base.Add(time.Duration(i) * 10 * time.Second) }, "before"))
	ref.Close()
	st.Close()
	open()
	queries := []audit.Query{
		{},
		{Attributes: []audit.Attribute{{Key: audit.AttrReadOnly, Value: "false"}}},
		{Attributes: []audit.Attribute{{Key: audit.AttrReadOnly, Value: "true"}}},
		{Attributes: []audit.Attribute{{Key: audit.AttrEventName, Value: "RareAfterRestart"}}},
		{Start: base.Add(20 * time.Minute), End: base.Add(40 * time.Minute)},
	}
	check := func(stage string) {
		t.Helper()
		for i, q := range queries {
			for _, limit := range []int{3, 50} {
				q := q
				q.Account, q.Region, q.Category, q.Limit = acct, region, audit.CategoryManagement, limit
				for page := 0; page < 4; page++ {
					want, err := ref.Lookup(ctx, q)
					if err != nil {
						t.Fatal(err)
					}
					got, err := st.Lookup(ctx, q)
					if err != nil {
						t.Fatal(err)
					}
					if !samePage(want, got) {
						t.Fatalf("%s: query %d limit %d page %d: (-sql +dirs):\n%s", stage, i, limit, page,
							gocmp.Diff(want, got, storetest.EquateRecords))
					}
					if want.Next == nil {
						break
					}
					q.After = want.Next
				}
			}
		}
	}
	check("after the restart")
	loads := st.dirs.loaded()
	if loads == 0 {
		t.Fatal("no directory was read")
	}
	b := tailBucket{partKey{acct, region, audit.CategoryManagement}, bucketOf(base.Unix())}
	all := func(*audit.Record, int64) bool { return true }
	// The index counting more records of the bucket than the table and
	// the tail hold (an append between its index entries and its
	// COMMIT; here the new process's first, the tail still empty): SQL
	// answers, and the directory is not read again.
	pending := func(stage string, n int64) {
		t.Helper()
		x := st.dirs.get(b)
		if x == nil || !x.ok {
			t.Fatalf("%s: the bucket's directory is not held", stage)
		}
		st.rw.RLock()
		got, newer, err := st.dir(ctx, b.k, b.d, n, 51, all)
		st.rw.RUnlock()
		if err != nil || got != nil || newer != nil {
			t.Fatalf("%s: dir with an append under way = %v, %d newer, %v; want nil (SQL)", stage, got != nil, len(newer), err)
		}
		if st.dirs.loaded() != loads || st.dirs.get(b) != x {
			t.Fatalf("%s: a lookup during an append read the directory again", stage)
		}
	}
	pending("the first append", 300+40)
	// Appends to the bucket: newest records, records among the old ones,
	// records sharing a second with old ones.
	appends := [][]audit.Record{
		mk(40, func(i int) time.Time { return base.Add(50*time.Minute + time.Duration(i)*time.Second) }, "new1"),
		mk(40, func(i int) time.Time { return base.Add(time.Duration(i) * 70 * time.Second) }, "among"),
		mk(30, func(i int) time.Time { return base.Add(time.Duration(i) * 10 * time.Second) }, "same"),
		mk(20, func(i int) time.Time { return base.Add(55*time.Minute + time.Duration(i)*time.Second) }, "new2"),
	}
	for i, recs := range appends {
		appendBoth(recs)
		check(fmt.Sprintf("append %d", i))
		if got := st.dirs.loaded(); got != loads {
			t.Fatalf("append %d: %d directories read after the restart's first lookups, want %d (none again)", i, got-loads+1, 1)
		}
	}
	x := st.dirs.get(b)
	n := int64(x.len())
	for _, recs := range appends {
		n += int64(len(recs))
	}
	pending("a later append", n+7)
	st.rw.RLock()
	got, newer, err := st.dir(ctx, b.k, b.d, n, 51, all)
	st.rw.RUnlock()
	if err != nil || got != x || len(newer) != 51 {
		t.Fatalf("dir once committed = %v, %d newer, %v; want the directory held and 51 of the tail", got == x, len(newer), err)
	}
}
