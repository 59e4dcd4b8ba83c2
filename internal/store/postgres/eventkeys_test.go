package postgres

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

// A database of version 10 upgraded to 11 (event_keys keyed by eventID
// and holding its row, events_event_id gone): the records stored before
// are found by EventId, with and without their account, and are
// duplicates when sent again; appends that mix them with new records
// number the new ones densely (the feed has no gap, no record twice) and
// EventId finds every new one at its place. The same eventID in two
// accounts stays two records.
func TestEventKeysUpgrade(t *testing.T) {
	ctx := context.Background()
	dsn, conn := databaseAtVersion(t, 10)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	g := storetest.NewGen(31, now.Add(-48*time.Hour))
	var all []audit.Record
	for _, acct := range []string{"111111111111", "222222222222", "111111111111"} {
		recs := g.Records(40)
		for i := range recs {
			recs[i] = g.Record(storetest.Spec{Account: acct, Region: "us-east-1", Time: recs[i].Time})
		}
		all = append(all, recs...)
	}
	// The same eventID in another account: a record of its own.
	twin := g.Record(storetest.Spec{Account: "222222222222", Region: "us-east-1", EventID: all[0].EventID, Time: all[0].Time, Category: all[0].Category})
	all = append(all, twin)
	// Version 10's appends (its event_keys: account, event_id, received).
	for b := 0; b*30 < len(all); b++ {
		appendV9(t, conn, all[b*30:min(len(all), (b+1)*30)], now.UnixMicro()-int64(10-b))
	}
	var last int64
	if err := conn.QueryRow(ctx, `SELECT last_seq FROM store_meta`).Scan(&last); err != nil || last != int64(len(all)) {
		t.Fatalf("last_seq %d (%v); want %d", last, err, len(all))
	}

	s, err := Open(ctx, dsn, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var idx int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE indexname = 'events_event_id'`).Scan(&idx); err != nil || idx != 0 {
		t.Fatalf("events_event_id after version 11: %d (%v)", idx, err)
	}
	var keys, rows int
	if err := s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM event_keys), (SELECT count(*) FROM events)`).Scan(&keys, &rows); err != nil {
		t.Fatal(err)
	}
	if keys != len(all) || rows != len(all) {
		t.Fatalf("after the upgrade: %d keys, %d rows; want %d", keys, rows, len(all))
	}

	// Sent again, every record is a duplicate.
	if res, err := s.Append(ctx, all[:50]); err != nil || res.Inserted != 0 || res.Duplicates != 50 {
		t.Fatalf("the old records again: %+v, %v", res, err)
	}
	// New records among old ones (and one twice in the batch): the new
	// ones get the places 0..n-1 of their batch.
	fresh := g.Records(25)
	var mixed []audit.Record
	for i := range fresh {
		mixed = append(mixed, all[3*i], fresh[i])
		if i == 7 {
			mixed = append(mixed, fresh[i])
		}
	}
	res, err := s.Append(ctx, mixed)
	if err != nil || res.Inserted != len(fresh) || res.Duplicates != len(mixed)-len(fresh) {
		t.Fatalf("mixed append: %+v, %v; want %d inserted", res, err, len(fresh))
	}
	// A batch whose first records are new and the rest old, then the
	// other way round.
	more := g.Records(6)
	for _, b := range [][]audit.Record{append(slices.Clone(more[:3]), all[60:70]...), append(slices.Clone(all[70:80]), more[3:]...)} {
		if _, err := s.Append(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	stored := append(append(slices.Clone(all), fresh...), more...)

	// The feed: every record once, in append order, seq without a gap.
	var feed []string
	var after int64
	for {
		page, err := s.ReadAppended(ctx, after, 17)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, a := range page {
			if a.Seq != after+1 {
				t.Fatalf("feed after %d gave seq %d", after, a.Seq)
			}
			feed = append(feed, a.Record.Account+"/"+a.Record.EventID)
			after = a.Seq
		}
	}
	var wantFeed []string
	for _, r := range stored {
		wantFeed = append(wantFeed, r.Account+"/"+r.EventID)
	}
	if !slices.Equal(feed, wantFeed) {
		t.Fatalf("feed after the upgrade:\n got %v\nwant %v", feed, wantFeed)
	}

	// EventId, in the record's account and region, in any account, and
	// with a condition on the row, finds exactly its records, byte for
	// byte.
	for i := range stored {
		r := &stored[i]
		for _, q := range []audit.Query{
			{Account: r.Account, Region: r.Region},
			{AnyAccount: true, AnyRegion: true},
			{Account: r.Account, AnyRegion: true, Attributes: []audit.Attribute{{Key: audit.AttrEventName, Value: r.EventName}}},
		} {
			q.Category, q.Limit = r.Category, 1
			q.Attributes = append([]audit.Attribute{{Key: audit.AttrEventID, Value: r.EventID}}, q.Attributes...)
			if got, w := pageAll(t, s, q), want(q, stored); len(w) == 0 || !slices.Equal(got, w) {
				t.Fatalf("EventId %s (%+v): %v; want %v", r.EventID, q, got, w)
			}
		}
		p, err := s.Lookup(ctx, audit.Query{Account: r.Account, Region: r.Region, Category: r.Category, Limit: 5,
			Attributes: []audit.Attribute{{Key: audit.AttrEventID, Value: r.EventID}}})
		if err != nil || len(p.Records) != 1 || string(p.Records[0].Raw) != string(r.Raw) {
			t.Fatalf("EventId %s in %s: %d records (%v); want its record byte for byte", r.EventID, r.Account, len(p.Records), err)
		}
	}
	// The twins: both accounts' records in an every-account lookup.
	q := audit.Query{AnyAccount: true, AnyRegion: true, Category: twin.Category, Limit: 1,
		Attributes: []audit.Attribute{{Key: audit.AttrEventID, Value: twin.EventID}}}
	if got := pageAll(t, s, q); len(got) != 2 {
		t.Fatalf("the eventID of two accounts: %v; want both", got)
	}
	// Version 10's Append on the new schema: refused, not half stored.
	if _, err := conn.Exec(ctx, `INSERT INTO event_keys (account, event_id, received) VALUES ('a', 'b', 1)`); err == nil {
		t.Error("version 10's key (no batch, no place) was accepted by version 11's schema")
	}
}
