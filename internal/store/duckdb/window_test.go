package duckdb

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

// TestWindowProbeJumpsEmptyHours: a store whose newest records are a few
// hundred read-only ones (a server's own calls), months after the rest (an
// import). Lookups that probe a window (no value, ReadOnly, a value in
// every hour) must not walk the empty months in steps, a query each: at
// most two queries for the first page, and the pages are right.
func TestWindowProbeJumpsEmptyHours(t *testing.T) {
	st, err := Open(filepath.Join(t.TempDir(), "events.duckdb"), Options{BucketDirBytes: -1}) // the SQL path
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	old := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	now := old.AddDate(0, 18, 0)
	g := storetest.NewGen(7, old)
	var recs, newest []audit.Record
	for i := range 4000 { // 200 hours of 20 records, 18 months ago
		name := "Decrypt" // readOnly false
		if i%2 == 0 {
			name = "DescribeKey"
		}
		recs = append(recs, g.Record(storetest.Spec{Time: old.Add(time.Duration(i) * 3 * time.Minute), EventName: name}))
	}
	for i := range 300 { // the newest hour: read-only calls only
		r := g.Record(storetest.Spec{Time: now.Add(time.Duration(i) * 10 * time.Second), EventName: "DescribeTrails"})
		if r.ReadOnly != audit.True || r.Category != audit.CategoryManagement {
			t.Fatalf("DescribeTrails: readOnly %v, category %v", r.ReadOnly, r.Category)
		}
		newest = append(newest, r)
	}
	recs = append(recs, newest...)
	if _, err := st.Append(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	base := audit.Query{Account: "111111111111", Region: "us-east-1", Category: audit.CategoryManagement, Limit: 50}
	after := *base.CursorOf(&want(recs, base)[len(newest)-1]) // the oldest of the newest hour
	for _, c := range []struct {
		name  string
		attrs []audit.Attribute
		after *audit.Cursor
		max   int64
	}{
		{"ReadOnly=false", []audit.Attribute{{Key: audit.AttrReadOnly, Value: "false"}}, nil, 2},
		{"ReadOnly=true past the newest hour", []audit.Attribute{{Key: audit.AttrReadOnly, Value: "true"}}, &after, 1},
		{"no value past the newest hour", nil, &after, 1},
		{"no value", nil, nil, 1},
		{"a value in every hour, past the newest", []audit.Attribute{{Key: audit.AttrEventSource, Value: recs[0].EventSource}}, &after, 2},
	} {
		q := base
		q.Attributes, q.After = c.attrs, c.after
		var exp []audit.Record
		for _, r := range want(recs, q) {
			if q.After == nil || q.After.Before(&r) {
				exp = append(exp, r)
			}
		}
		if len(exp) < q.Limit {
			t.Fatalf("%s: the data set holds %d matches, fewer than a page", c.name, len(exp))
		}
		q0 := st.queries.Load()
		p, err := st.Lookup(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		if n := st.queries.Load() - q0; n > c.max {
			t.Errorf("%s: %d queries for the first page; want at most %d", c.name, n, c.max)
		}
		if diff := cmp.Diff(ids(exp[:q.Limit]), ids(p.Records)); diff != "" {
			t.Errorf("%s: first page (-want +got):\n%s", c.name, diff)
		}
	}
}
