package postgres_test

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/pgtest"
	"github.com/cairn-audit/cairn/internal/store/duckdb"
	"github.com/cairn-audit/cairn/internal/store/postgres"
)

// TestDifferentialRealRecords feeds the real CloudTrail records of
// shared/testdata/real to the embedded store and to PostgreSQL, then pages
// through every lookup kind on both (every page, each following the
// previous page's cursor) and compares the pages record for record: the
// two backends must answer Event History identically.
func TestDifferentialRealRecords(t *testing.T) {
	ctx := context.Background()
	var recs []audit.Record
	for _, rr := range audittest.RealRecords(t) {
		r, err := audit.Extract(rr.Raw)
		if err != nil {
			continue // what imports refuse, no store sees
		}
		recs = append(recs, r)
	}
	if len(recs) < 1000 {
		t.Fatalf("%d real records extract; the test needs the shared data", len(recs))
	}
	duck, err := duckdb.Open(filepath.Join(t.TempDir(), "events.duckdb"), duckdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer duck.Close()
	pg, err := postgres.Open(ctx, pgtest.Database(t), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	for chunk := range slices.Chunk(recs, 1000) {
		a, err := duck.Append(ctx, chunk)
		if err != nil {
			t.Fatal(err)
		}
		b, err := pg.Append(ctx, chunk)
		if err != nil {
			t.Fatal(err)
		}
		if a != b {
			t.Fatalf("Append: duckdb %+v, postgres %+v", a, b)
		}
	}

	queries := differentialQueries(recs)
	t.Logf("%d records, %d lookups", len(recs), len(queries))
	var dd, pd time.Duration
	var np int
	defer func() { t.Logf("duckdb %v, postgres %v, %d pages", dd, pd, np) }()
	for _, q := range queries {
		name := fmt.Sprintf("%s/%s/%v any=%v,%v %v limit %d", q.Account, q.Region, q.Category, q.AnyAccount, q.AnyRegion, q.Attributes, q.Limit)
		t0 := time.Now()
		want, wantPages := pages(t, duck, q)
		t1 := time.Now()
		got, gotPages := pages(t, pg, q)
		dd += t1.Sub(t0)
		pd += time.Since(t1)
		np += wantPages
		// cmp.Diff walks every byte by reflection: only for a difference.
		if !reflect.DeepEqual(want, got) {
			t.Errorf("%s: (-duckdb +postgres):\n%s", name, cmp.Diff(want, got, cmpopts.EquateEmpty()))
		}
		if wantPages != gotPages {
			t.Errorf("%s: duckdb answered in %d pages, postgres in %d", name, wantPages, gotPages)
		}
	}
}

// differentialQueries makes the lookups of every kind: each (account,
// region, category) with records, unbounded and within a time window; per
// attribute key its most and least common values and an absent one; a
// responder's lookups of every account and every region.
func differentialQueries(recs []audit.Record) []audit.Query {
	type scope struct {
		account, region string
		cat             audit.Category
	}
	count := map[scope]int{}
	for _, r := range recs {
		count[scope{r.Account, r.Region, r.Category}]++
	}
	var scopes []scope
	for s := range count {
		scopes = append(scopes, s)
	}
	// The largest scopes first, then a few small ones; deterministic.
	slices.SortFunc(scopes, func(a, b scope) int {
		if c := count[b] - count[a]; c != 0 {
			return c
		}
		return strings.Compare(a.account+a.region, b.account+b.region)
	})
	scopes = append(scopes[:min(6, len(scopes))], scopes[len(scopes)-min(3, len(scopes)):]...)
	var qs []audit.Query
	for _, s := range scopes {
		base := audit.Query{Account: s.account, Region: s.region, Category: s.cat, Limit: 50}
		qs = append(qs, base)
		var in []audit.Record
		for _, r := range recs {
			if r.Account == s.account && r.Region == s.region && r.Category == s.cat {
				in = append(in, r)
			}
		}
		slices.SortFunc(in, func(a, b audit.Record) int { return audit.Newer(&a, &b) })
		window := base
		window.Start, window.End, window.Limit = in[len(in)*3/4].Time, in[len(in)/4].Time, 7
		qs = append(qs, window)
		for _, key := range audit.AttributeKeys {
			freq := map[string]int{}
			for _, r := range in {
				for _, v := range values(&r, key) {
					freq[v]++
				}
			}
			vals := []string{"no-such-value"}
			if len(freq) > 0 {
				var all []string
				for v := range freq {
					all = append(all, v)
				}
				slices.SortFunc(all, func(a, b string) int {
					if c := freq[b] - freq[a]; c != 0 {
						return c
					}
					return strings.Compare(a, b)
				})
				vals = append(vals, all[0], all[len(all)/2], all[len(all)-1])
			}
			for _, v := range vals {
				q := base
				q.Limit = 7
				q.Attributes = []audit.Attribute{{Key: key, Value: v}}
				qs = append(qs, q)
			}
		}
		every := base
		every.AnyAccount, every.Limit = true, 20
		everywhere := base
		everywhere.AnyRegion, everywhere.Limit = true, 20
		qs = append(qs, every, everywhere)
	}
	return qs
}

func values(r *audit.Record, key audit.AttributeKey) []string {
	switch key {
	case audit.AttrEventID:
		return []string{r.EventID}
	case audit.AttrEventName:
		return []string{r.EventName}
	case audit.AttrEventSource:
		return []string{r.EventSource}
	case audit.AttrReadOnly:
		return []string{r.ReadOnly.String()}
	case audit.AttrUsername:
		return []string{r.Username}
	case audit.AttrAccessKeyID:
		return []string{r.AccessKeyID}
	}
	var out []string
	for _, x := range r.Resources {
		if key == audit.AttrResourceType {
			out = append(out, x.Type)
		} else {
			out = append(out, x.Name, x.ARN)
		}
	}
	return out
}

// pages follows a lookup's cursors to the end and returns every record
// and the number of pages.
func pages(t *testing.T, st audit.Store, q audit.Query) ([]audit.Record, int) {
	t.Helper()
	var all []audit.Record
	for n := 1; ; n++ {
		p, err := st.Lookup(context.Background(), q)
		if err != nil {
			t.Fatalf("Lookup: %v", err)
		}
		all = append(all, p.Records...)
		if p.Next == nil || n > 5000 {
			return all, n
		}
		q.After = p.Next
	}
}
