package postgres

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/pgtest"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

// planIndexes returns the indexes the plan of q's lookup reads: the
// query of its postings when an attribute drives it, else its one query.
func planIndexes(t *testing.T, s *Store, q audit.Query) []string {
	t.Helper()
	if drive := driving(&q); drive != nil {
		kind, _ := postingKind(drive.Key)
		sql, args := postingsSQL(&q, kind, drive.Value, math.MinInt64, math.MaxInt64)
		return sqlIndexes(t, s, sql+" ORDER BY t_max DESC, batch DESC, account DESC, region DESC LIMIT 4", args)
	}
	sql, args, err := lookupSQL(&q)
	if err != nil {
		t.Fatal(err)
	}
	return sqlIndexes(t, s, sql, args)
}

// sqlIndexes returns the indexes the plan of sql reads, with sequential
// scans off so that the planner must pick an index even on a small table:
// the question is which one it has to pick.
func sqlIndexes(t *testing.T, s *Store, sql string, args []any) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SET enable_seqscan = off"); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(ctx, "RESET enable_seqscan") //nolint:errcheck // the connection is the test's
	rows, err := conn.Query(ctx, "EXPLAIN "+sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile(`Index (?:Only )?Scan (?:Backward )?using (\S+)|Bitmap Index Scan on (\S+)`).FindAllStringSubmatch(strings.Join(plan, "\n"), -1) {
		out = append(out, m[1]+m[2])
	}
	return out
}

// A responder's lookups across every account (and region) read an index
// that leads with the looked-up value, for every attribute that has one
// (the postings' every-account index; for EventId event_keys' key, version
// 11, then each key's row by its place), not an index of one
// account's time range filtered row by row (which reads the whole index:
// 533 ms p50 at 1M).
func TestResponderLookupsLeadWithTheValue(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := openAt(t, &now)
	g := storetest.NewGen(5, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC))
	var recs []audit.Record
	for i := range 300 {
		recs = append(recs, g.Record(storetest.Spec{Account: fmt.Sprintf("%012d", i%7), Region: []string{"us-east-1", "eu-west-1"}[i%2]}))
	}
	if _, err := s.Append(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, "ANALYZE"); err != nil {
		t.Fatal(err)
	}
	r := recs[17]
	d := floorDiv(now.UnixMicro(), day)
	for _, c := range []struct {
		attr        audit.Attribute
		part, index string // the partition and the column its index must lead with
	}{
		{audit.Attribute{Key: audit.AttrAccessKeyID, Value: r.AccessKeyID}, postPartName(d), "kind"},
		{audit.Attribute{Key: audit.AttrUsername, Value: r.Username}, postPartName(d), "kind"},
		{audit.Attribute{Key: audit.AttrEventName, Value: r.EventName}, postPartName(d), "kind"},
		{audit.Attribute{Key: audit.AttrEventSource, Value: r.EventSource}, postPartName(d), "kind"},
		{audit.Attribute{Key: audit.AttrEventID, Value: r.EventID}, partName(d), "batch"},
	} {
		part := c.part
		for _, scope := range []struct {
			name string
			q    audit.Query
		}{
			{"every account and region", audit.Query{AnyAccount: true, AnyRegion: true}},
			{"every account, one region", audit.Query{AnyAccount: true, Region: r.Region}},
			{"one account, every region", audit.Query{Account: r.Account, AnyRegion: true}},
		} {
			q := scope.q
			q.Category, q.Limit, q.Attributes = r.Category, 50, []audit.Attribute{c.attr}
			got := planIndexes(t, s, q)
			if len(got) == 0 {
				t.Errorf("%s by %s: the plan reads no index", scope.name, c.attr.Key)
				continue
			}
			if c.attr.Key == audit.AttrEventID && !slices.Contains(got, "event_keys_pkey") {
				t.Errorf("%s by %s: the plan does not read event_keys_pkey (%v)", scope.name, c.attr.Key, got)
			}
			for _, ix := range got {
				// (the next day's partition is empty: any index will do)
				// (one account: its own indexes, which lead with it, are
				// the planner's choice to make)
				if strings.HasPrefix(ix, part+"_") && !strings.HasPrefix(ix, part+"_"+c.index+"_") &&
					!(!q.AnyAccount && strings.HasPrefix(ix, part+"_account_")) {
					t.Errorf("%s by %s: the plan reads %s; want an index leading with %s (%v)", scope.name, c.attr.Key, ix, c.index, got)
				}
			}
			// and the answer is the one a scan gives
			p, err := s.Lookup(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			want := 0
			for i := range recs {
				if q.Matches(&recs[i]) {
					want++
				}
			}
			if len(p.Records) != min(want, 50) || want == 0 {
				t.Errorf("%s by %s: %d records; want %d", scope.name, c.attr.Key, len(p.Records), min(want, 50))
			}
		}
	}
}

// Lookups by resource type or name, in one account or across all of them,
// read the postings' indexes (each value's postings newest first), and
// find what a scan finds: every record with the value once, a record whose
// name and ARN are equal too.
func TestResourceLookupsReadThePostings(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := openAt(t, &now)
	g := storetest.NewGen(6, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC))
	var recs []audit.Record
	for i := range 300 {
		spec := storetest.Spec{Account: fmt.Sprintf("%012d", i%7), Region: []string{"us-east-1", "eu-west-1"}[i%2]}
		if i%3 == 0 {
			spec.Bucket = "shared-bucket"
		}
		r := g.Record(spec)
		if i%5 == 0 && len(r.Resources) > 0 {
			// the same value twice in one record: still one match
			r.Resources = append(r.Resources, audit.Resource{Type: r.Resources[0].Type, Name: "shared-bucket", ARN: "shared-bucket"})
		}
		recs = append(recs, r)
	}
	if _, err := s.Append(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, "ANALYZE"); err != nil {
		t.Fatal(err)
	}
	var typ string
	for _, r := range recs {
		if len(r.Resources) > 0 && r.Resources[0].Type != "" {
			typ = r.Resources[0].Type
			break
		}
	}
	part := postPartName(floorDiv(now.UnixMicro(), day))
	for _, attr := range []audit.Attribute{
		{Key: audit.AttrResourceName, Value: "shared-bucket"},
		{Key: audit.AttrResourceType, Value: typ},
	} {
		for _, scope := range []struct {
			name string
			q    audit.Query
		}{
			{"one account and region", audit.Query{Account: recs[0].Account, Region: recs[0].Region}},
			{"every account and region", audit.Query{AnyAccount: true, AnyRegion: true}},
			{"every account, one region", audit.Query{AnyAccount: true, Region: recs[0].Region}},
		} {
			q := scope.q
			q.Category, q.Limit, q.Attributes = recs[0].Category, 1000, []audit.Attribute{attr}
			got := planIndexes(t, s, q)
			if !slices.ContainsFunc(got, func(ix string) bool { return strings.HasPrefix(ix, part+"_") }) {
				t.Errorf("%s by %s: the plan reads %v; want an index of %s", scope.name, attr.Key, got, part)
			}
			p, err := s.Lookup(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for i := range recs {
				if q.Matches(&recs[i]) {
					want = append(want, recs[i].EventID)
				}
			}
			var ids []string
			for _, r := range p.Records {
				ids = append(ids, r.EventID)
			}
			slices.Sort(ids)
			slices.Sort(want)
			if len(want) == 0 || !slices.Equal(ids, want) {
				t.Errorf("%s by %s: %d records; want %d (%v, want %v)", scope.name, attr.Key, len(ids), len(want), ids, want)
			}
		}
	}
}

// Records stored before version 4 (raw as it came, codec 0), after it
// (zstd frames, codec 1) and now (S2 blocks, codec 2) read back byte for byte side by side, through Lookup and
// the feed; a codec this cairn does not know is an error, not a panic.
func TestRecordCodecs(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, pgtest.Database(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	recs := storetest.NewGen(8, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)).Records(40)
	if _, err := s.Append(ctx, recs); err != nil {
		t.Fatal(err)
	}
	var zstdRows int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE raw_codec = 2 AND raw <> ALL($1::bytea[])`,
		func() [][]byte {
			var out [][]byte
			for _, r := range recs {
				out = append(out, r.Raw)
			}
			return out
		}()).Scan(&zstdRows); err != nil {
		t.Fatal(err)
	}
	if zstdRows != len(recs) {
		t.Fatalf("%d of %d rows hold a frame other than the record; want all", zstdRows, len(recs))
	}
	// A third of the rows as version 3 wrote them, a third as version 4
	// to 8 did (zstd frames).
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		switch i % 3 {
		case 0:
			if _, err := s.pool.Exec(ctx, `UPDATE events SET raw = $1, raw_codec = 0 WHERE event_id = $2`, r.Raw, []byte(r.EventID)); err != nil {
				t.Fatal(err)
			}
		case 1:
			if _, err := s.pool.Exec(ctx, `UPDATE events SET raw = $1, raw_codec = 1 WHERE event_id = $2`, enc.EncodeAll(r.Raw, nil), []byte(r.EventID)); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, err := s.ReadAppended(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(recs) {
		t.Fatalf("feed: %d records; want %d", len(got), len(recs))
	}
	byID := map[string][]byte{}
	for _, r := range recs {
		byID[r.EventID] = r.Raw
	}
	for _, a := range got {
		if string(a.Record.Raw) != string(byID[a.Record.EventID]) {
			t.Errorf("feed: record %s is not byte for byte what was appended", a.Record.EventID)
		}
	}
	q := audit.Query{Account: recs[0].Account, Region: recs[0].Region, Category: recs[0].Category, Limit: 100}
	p, err := s.Lookup(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range p.Records {
		if string(r.Raw) != string(byID[r.EventID]) {
			t.Errorf("lookup: record %s is not byte for byte what was appended", r.EventID)
		}
	}
	// Damaged blocks are errors, not panics.
	for _, bad := range [][]byte{{}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, {0x10, 0x00}, []byte("not s2 at all")} {
		if _, err := s.pool.Exec(ctx, `UPDATE events SET raw = $1, raw_codec = 2 WHERE event_id = $2`, bad, []byte(recs[2].EventID)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ReadAppended(ctx, 0, 100); err == nil {
			t.Errorf("feed over a damaged S2 block %x: no error", bad)
		}
	}
	if _, err := s.pool.Exec(ctx, `UPDATE events SET raw = $1, raw_codec = 2 WHERE event_id = $2`, s.s2d.Encode(nil, recs[2].Raw), []byte(recs[2].EventID)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `UPDATE events SET raw_codec = 9 WHERE event_id = $1`, []byte(recs[1].EventID)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadAppended(ctx, 0, 100); err == nil || !strings.Contains(err.Error(), "codec 9") {
		t.Errorf("feed over a row of codec 9: %v; want an error naming the codec", err)
	}
}
