package duckdb

import (
	"cmp"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

// TestLookupsFromTailAsTable: lookups whose newest buckets the tail holds
// whole (answered from memory, Store.fromTail) return the pages a store
// without a tail returns (answered by SQL), page for page and cursor for
// cursor: several accounts, regions and categories, sub-second and
// non-UTC times, records sharing a second, duplicates, a bucket appended
// to across batches and one written again after a restart (part of it
// then not in the tail), a tail too small for the oldest buckets, every
// attribute kind, time bounds, cursors and ReceivedSince. It also checks
// that the tail answered: the store with a tail runs fewer queries.
func TestLookupsFromTailAsTable(t *testing.T) {
	ctx := context.Background()
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	clock := base.Add(48 * time.Hour)
	now := func() time.Time { return clock }
	dir := t.TempDir()
	tailPath, sqlPath := filepath.Join(dir, "tail.duckdb"), filepath.Join(dir, "sql.duckdb")
	open := func(path string, tailBytes int64) *Store {
		st, err := Open(path, Options{TailBytes: tailBytes, BucketDirBytes: -1, Now: now}) // tail or SQL
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	withTail, withoutTail := open(tailPath, 400<<10), open(sqlPath, -1)
	defer func() { withTail.Close(); withoutTail.Close() }()
	appendBoth := func(recs []audit.Record) {
		t.Helper()
		for _, st := range []*Store{withTail, withoutTail} {
			if _, err := st.Append(ctx, recs); err != nil {
				t.Fatal(err)
			}
		}
	}
	g := storetest.NewGen(43, base)
	shapes := storetest.NewShapes(t, 5)
	var all []audit.Record
	batch := func(b int) []audit.Record {
		var recs []audit.Record
		hour := base.Add(time.Duration(b/2) * time.Hour) // two batches an hour: buckets appended to twice
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
					s.AccessKeyID = "AKIATAIL"
				}
				if i%13 == 0 {
					s.EventName = "RareTailEvent"
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
			{Attributes: []audit.Attribute{{Key: audit.AttrEventName, Value: "RareTailEvent"}}},
			{Attributes: []audit.Attribute{{Key: audit.AttrAccessKeyID, Value: "AKIATAIL"}}},
			{Attributes: []audit.Attribute{{Key: audit.AttrUsername, Value: all[7].Username}}},
			{Attributes: []audit.Attribute{{Key: audit.AttrEventSource, Value: all[9].EventSource}}},
			{Attributes: []audit.Attribute{{Key: audit.AttrEventID, Value: all[len(all)-5].EventID}}},
			{Attributes: []audit.Attribute{{Key: audit.AttrResourceType, Value: "AWS::S3::Bucket"}}},
			{Attributes: []audit.Attribute{{Key: audit.AttrResourceName, Value: "bucket-3"}}},
			{End: mid},
			{Start: mid, End: mid.Add(2 * time.Hour)},
			{ReceivedSince: clock.Add(-time.Minute)},
		}
		for i, q := range queries {
			for _, part := range []partKey{{"111111111111", "us-east-1", audit.CategoryManagement}} {
				for _, limit := range []int{3, 50} {
					pages := 4 // the newest pages: those the tail answers, and the first after them
					q := q
					q.Account, q.Region, q.Category, q.Limit = part.account, part.region, part.category, limit
					for page := 0; ; page++ {
						a, err := withTail.Lookup(ctx, q)
						if err != nil {
							t.Fatal(err)
						}
						b, err := withoutTail.Lookup(ctx, q)
						if err != nil {
							t.Fatal(err)
						}
						if diff := gocmp.Diff(b, a, storetest.EquateRecords); diff != "" {
							t.Fatalf("%s: query %d %v limit %d page %d: (-sql +tail):\n%s", stage, i, part, limit, page, diff)
						}
						if a.Next == nil || page > pages {
							break
						}
						q.After = a.Next
					}
				}
			}
		}
	}
	countQueries := func(f func()) (tail, sql int64) {
		t0, s0 := withTail.queries.Load(), withoutTail.queries.Load()
		f()
		return withTail.queries.Load() - t0, withoutTail.queries.Load() - s0
	}
	for b := range 16 {
		recs := batch(b)
		appendBoth(recs)
		all = append(all, recs...)
		clock = clock.Add(time.Minute)
	}
	tq, sq := countQueries(func() { check("after the appends") })
	if tq >= sq {
		t.Errorf("queries with the tail %d, without %d: the tail answered nothing", tq, sq)
	}
	t.Logf("queries with the tail %d, without %d", tq, sq)
	// A restart empties the tail; appends to the newest hour then leave
	// that bucket partly outside it (answered by SQL).
	if err := withTail.Close(); err != nil {
		t.Fatal(err)
	}
	withTail = open(tailPath, 400<<10)
	recs := batch(15)
	for i := range recs {
		recs[i].EventID = fmt.Sprintf("again-%03d", i)
	}
	appendBoth(recs)
	all = append(all, recs...)
	check("after a restart")
	// Retention empties the tail too.
	clock = clock.Add(time.Hour)
	for _, st := range []*Store{withTail, withoutTail} {
		if _, err := st.DeleteReceivedBefore(ctx, clock.Add(-65*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	appendBoth(batch(16))
	check("after retention")
	// Buckets whose records arrived in time order (the newest page reads
	// only the newest of them), with seconds shared.
	for b := 20; b < 26; b += 2 {
		recs := batch(b)
		slices.SortStableFunc(recs, func(x, y audit.Record) int { return cmp.Compare(x.Time.Unix(), y.Time.Unix()) })
		appendBoth(recs)
		all = append(all, recs...)
	}
	check("in time order")
	// Nearly in time order: every fifth record a few seconds late, as
	// concurrent callers' records reach a batch.
	for b := 26; b < 30; b += 2 {
		recs := batch(b)
		slices.SortStableFunc(recs, func(x, y audit.Record) int { return cmp.Compare(x.Time.Unix(), y.Time.Unix()) })
		for i := 4; i < len(recs); i += 5 {
			if late := recs[i].Time.Add(-time.Duration(1+i%3) * time.Second); bucketOf(late.Unix()) == bucketOf(recs[i].Time.Unix()) {
				recs[i].Time = late
			}
		}
		appendBoth(recs)
		all = append(all, recs...)
	}
	check("nearly in time order")
}
