package postgres

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

// pageAll pages through q with s and returns every record's (account,
// eventID), in the order the pages gave them.
func pageAll(t *testing.T, s *Store, q audit.Query) []string {
	t.Helper()
	var got []string
	for range 10000 {
		p, err := s.Lookup(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Records {
			got = append(got, r.Account+"/"+r.EventID)
		}
		if p.Next == nil {
			return got
		}
		if len(p.Records) != q.Limit {
			t.Fatalf("a page of %d records with a next cursor; want %d", len(p.Records), q.Limit)
		}
		q.After = p.Next
	}
	t.Fatal("paging does not end")
	return nil
}

// want is what paging through q must give: every record of recs q
// matches, in the order of audit.Newer.
func want(q audit.Query, recs []audit.Record) []string {
	var m []audit.Record
	for i := range recs {
		if q.Matches(&recs[i]) {
			m = append(m, recs[i])
		}
	}
	slices.SortFunc(m, func(a, b audit.Record) int { return audit.Newer(&a, &b) })
	out := make([]string, len(m))
	for i := range m {
		out[i] = m[i].Account + "/" + m[i].EventID
	}
	return out
}

// Postings' edge cases against a scan of the records: imports of old logs
// whose batches overlap in eventTime, a value in many batches, cursors
// that fall inside a posting and between postings, many records of the
// same second in several batches (eventID orders them), several accounts
// holding the same values and the same eventIDs, time bounds, and a second
// attribute filtering the records a posting names.
func TestPostingsEdgeCases(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := openAt(t, &now)
	rng := rand.New(rand.NewPCG(7, 11))
	base := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	g := storetest.NewGen(9, base)
	accounts := []string{"111111111111", "222222222222", "333333333333"}
	regions := []string{"us-east-1", "eu-west-1"}
	names := []string{"GetObject", "PutObject", "AssumeRole"}
	var all []audit.Record
	seen := map[string]bool{}
	for b := range 40 {
		var batch []audit.Record
		for i := range 1 + rng.IntN(30) {
			spec := storetest.Spec{
				Account:   accounts[rng.IntN(len(accounts))],
				Region:    regions[rng.IntN(len(regions))],
				EventName: names[rng.IntN(len(names))],
			}
			switch b % 4 {
			case 0: // an import of old logs: anywhere in ten days, overlapping other batches
				spec.Time = base.Add(time.Duration(rng.IntN(10*24*3600)) * time.Second)
			case 1: // many records of one second, in several batches
				spec.Time = base.Add(5 * 24 * time.Hour)
			default: // live: this batch's minutes
				spec.Time = base.Add(time.Duration(b)*6*time.Hour + time.Duration(i)*time.Second)
			}
			if rng.IntN(4) == 0 {
				spec.AccessKeyID = "AKIASHARED"
			}
			if rng.IntN(3) == 0 {
				spec.Bucket = "shared-bucket"
			}
			r := g.Record(spec)
			if b%5 == 2 && len(all) > 0 {
				// the same eventID in another account
				o := all[rng.IntN(len(all))]
				if o.Account != r.Account {
					r = g.Record(storetest.Spec{Account: r.Account, Region: r.Region, EventName: r.EventName,
						EventID: o.EventID, Time: o.Time, AccessKeyID: spec.AccessKeyID, Bucket: spec.Bucket})
				}
			}
			if seen[r.Account+"/"+r.EventID] {
				continue
			}
			seen[r.Account+"/"+r.EventID] = true
			batch = append(batch, r)
		}
		res, err := s.Append(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		if res.Inserted != len(batch) {
			t.Fatalf("batch %d: %d inserted of %d", b, res.Inserted, len(batch))
		}
		all = append(all, batch...)
	}
	var typ string
	for _, r := range all {
		if len(r.Resources) > 0 && r.Resources[0].Type != "" {
			typ = r.Resources[0].Type
			break
		}
	}
	attrs := []audit.Attribute{
		{Key: audit.AttrEventName, Value: "GetObject"},
		{Key: audit.AttrEventName, Value: "NoSuchName"},
		{Key: audit.AttrAccessKeyID, Value: "AKIASHARED"},
		{Key: audit.AttrUsername, Value: all[3].Username},
		{Key: audit.AttrEventSource, Value: all[5].EventSource},
		{Key: audit.AttrResourceName, Value: "shared-bucket"},
		{Key: audit.AttrResourceType, Value: typ},
	}
	scopes := []audit.Query{
		{Account: accounts[0], Region: regions[0]},
		{Account: accounts[1], AnyRegion: true},
		{AnyAccount: true, Region: regions[1]},
		{AnyAccount: true, AnyRegion: true},
	}
	bounds := [][2]time.Time{
		{},
		{base.Add(2 * 24 * time.Hour), base.Add(6 * 24 * time.Hour)},
		{base.Add(5*24*time.Hour + 500*time.Millisecond), time.Time{}}, // the crowded second is left out: Start rounds up
		{time.Time{}, base.Add(5 * 24 * time.Hour)},                    // End takes it in
	}
	checked := 0
	for _, a := range attrs {
		for _, sc := range scopes {
			for bi, bd := range bounds {
				for ei, extra := range [][]audit.Attribute{nil, {{Key: audit.AttrReadOnly, Value: "true"}}, {{Key: audit.AttrResourceName, Value: "shared-bucket"}}} {
					for _, limit := range []int{1, 4, 50} {
						if limit == 1 && (ei > 0 || bi != 1) || limit == 4 && ei > 0 && bi > 0 {
							continue // small pages on fewer lookups: the test's time
						}
						q := sc
						q.Category, q.Limit, q.Start, q.End = audit.CategoryManagement, limit, bd[0], bd[1]
						q.Attributes = append([]audit.Attribute{a}, extra...)
						w := want(q, all)
						got := pageAll(t, s, q)
						if !slices.Equal(got, w) {
							t.Errorf("%s=%s %+v limit %d bounds %v extra %v:\n got %d %v\nwant %d %v", a.Key, a.Value,
								sc, limit, bd, extra, len(got), strings.Join(got, " "), len(w), strings.Join(w, " "))
						}
						if len(w) > 0 {
							checked++
						}
					}
				}
			}
		}
	}
	if checked < 100 {
		t.Fatalf("only %d lookups with records checked: the data does not exercise the postings", checked)
	}
	// The data holds what the test says it does: postings that overlap
	// in time, and a value in many batches.
	var overlapping, batches int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM event_postings a JOIN event_postings b
		ON a.kind = b.kind AND a.value = b.value AND a.account = b.account AND a.region = b.region AND a.batch < b.batch
		AND a.t_min <= b.t_max AND b.t_min <= a.t_max`).Scan(&overlapping); err != nil {
		t.Fatal(err)
	}
	if err := s.pool.QueryRow(ctx, `SELECT count(DISTINCT batch) FROM event_postings WHERE kind = $1 AND value = $2`,
		kindEventName, []byte("GetObject")).Scan(&batches); err != nil {
		t.Fatal(err)
	}
	if overlapping == 0 || batches < 30 {
		t.Fatalf("%d overlapping pairs of postings, GetObject in %d batches: the data does not exercise the postings", overlapping, batches)
	}
	t.Logf("%d lookups with records, %d overlapping pairs of postings, GetObject in %d batches", checked, overlapping, batches)
}
