package apiserver

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
)

// queryLog is a History that notes the queries it answers.
type queryLog struct {
	*audittest.MemStore
	mu sync.Mutex
	qs []audit.Query
}

func (l *queryLog) Lookup(ctx context.Context, q audit.Query) (audit.Page, error) {
	l.mu.Lock()
	l.qs = append(l.qs, q)
	l.mu.Unlock()
	return l.MemStore.Lookup(ctx, q)
}

// TestWarmLookupsRunsTheSavedLookupsUnrecorded: WarmLookups asks the store
// what each saved lookup asked (account, region, scope, category,
// attributes, page size, start), oldest first, encodes the pages and
// records nothing; a later page (a cursor) and a lookup of no account are
// left out.
func TestWarmLookupsRunsTheSavedLookupsUnrecorded(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	mem := audittest.NewMemStore()
	var recs []audit.Record
	for i := range 60 {
		recs = append(recs, record(t, "e"+string(rune('A'+i%26))+string(rune('a'+i/26)), now.Add(-time.Duration(i)*time.Minute), "GetObject"))
	}
	if _, err := mem.Append(t.Context(), recs); err != nil {
		t.Fatal(err)
	}
	hist := &queryLog{MemStore: mem}
	s := New(Config{Auth: fakeAuth{}, History: hist, Recorder: syncRecorder{mem}, Retention: 90 * 24 * time.Hour,
		TokenKey: []byte("0123456789abcdef0123456789abcdef"), Now: func() time.Time { return now }})
	start := now.Add(-30 * time.Minute).Truncate(time.Second)
	saved := []audit.Query{ // newest first, as the store saves them
		{Account: "111111111111", Region: "us-east-1", Category: audit.CategoryManagement, Limit: 50,
			Attributes: []audit.Attribute{{Key: audit.AttrEventName, Value: "GetObject"}}},
		{AnyAccount: true, AnyRegion: true, Region: "eu-west-1", Category: audit.CategoryManagement, Limit: 10, Start: start},
		{Account: "111111111111", Region: "us-east-1", Category: audit.CategoryManagement, Limit: 2,
			After: &audit.Cursor{Time: now, EventID: "eAa", Account: "111111111111"}},
		{Account: "222222222222", Region: "eu-west-1", Category: audit.CategoryInsight, Limit: 5},
		{Region: "us-east-1", Category: audit.CategoryManagement, Limit: 5}, // no account, not every account's
	}
	before := mem.Len()
	if n := s.WarmLookups(t.Context(), saved, time.Minute); n != 3 {
		t.Errorf("WarmLookups ran %d lookups, want 3", n)
	}
	if got := mem.Len(); got != before {
		t.Errorf("the store holds %d records after WarmLookups, %d before: it recorded something", got, before)
	}
	want := []audit.Query{saved[3], saved[1], saved[0]}
	if len(hist.qs) != len(want) {
		t.Fatalf("the store was asked %d lookups, want %d: %+v", len(hist.qs), len(want), hist.qs)
	}
	for i, w := range want {
		g := hist.qs[i]
		if g.Account != w.Account || g.AnyAccount != w.AnyAccount || g.AnyRegion != w.AnyRegion || g.Category != w.Category ||
			g.Limit != w.Limit || !g.Start.Equal(w.Start) || !slices.Equal(g.Attributes, w.Attributes) || g.After != nil ||
			(!w.AnyRegion && g.Region != w.Region) {
			t.Errorf("lookup %d: the store was asked %+v, want %+v", i, g, w)
		}
	}
}
