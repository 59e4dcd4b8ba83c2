package trail

import (
	"context"
	"time"

	"fmt"
	"github.com/cairn-audit/cairn/internal/bucket/local"
	"testing"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
)

// benchTrails returns 100 trails of the records' accounts with many
// selectors each: a third basic (5 selectors, 250 S3 and Lambda data
// resources), a third advanced (5 selectors of 4 field selectors, 100
// values), a third the default selector.
func benchTrails(recs []audit.Record) []Trail {
	accounts := map[string]bool{}
	var accts []string
	for _, r := range recs {
		if !accounts[r.Account] {
			accounts[r.Account] = true
			accts = append(accts, r.Account)
		}
	}
	trails := make([]Trail, 100)
	for i := range trails {
		t := Trail{Name: fmt.Sprintf("trail-%03d", i), Account: accts[i%len(accts)], HomeRegion: "us-east-1",
			IsMultiRegionTrail: i%2 == 0, IncludeGlobalServiceEvents: true}
		switch i % 3 {
		case 0:
			for s := range 5 {
				var vals []string
				for v := range 25 {
					vals = append(vals, fmt.Sprintf("arn:aws:s3:::bucket-%d-%d/", s, v))
				}
				var fns []string
				for v := range 25 {
					fns = append(fns, fmt.Sprintf("arn:aws:lambda:us-east-1:%s:function:fn-%d-%d", t.Account, s, v))
				}
				rw := []string{"All", "ReadOnly", "WriteOnly"}[s%3]
				t.EventSelectors = append(t.EventSelectors, EventSelector{ReadWriteType: &rw,
					ExcludeManagementEventSources: []string{"kms.amazonaws.com"},
					DataResources:                 []DataResource{{Type: str("AWS::S3::Object"), Values: vals}, {Type: str("AWS::Lambda::Function"), Values: fns}}})
			}
		case 1:
			for s := range 5 {
				var names []string
				for v := range 15 {
					names = append(names, fmt.Sprintf("Operation%d_%d", s, v))
				}
				t.AdvancedEventSelectors = append(t.AdvancedEventSelectors, audit.AdvancedSelector{FieldSelectors: []audit.FieldSelector{
					{Field: "eventCategory", Equals: []string{"Management", "Data"}},
					{Field: "eventSource", NotEquals: []string{"kms.amazonaws.com", "rdsdata.amazonaws.com"}},
					{Field: "eventName", NotStartsWith: names},
					{Field: "readOnly", Equals: []string{[]string{"true", "false"}[s%2]}},
				}})
			}
		}
		trails[i] = t
	}
	return trails
}

// BenchmarkSelect measures selection: every real record against 100
// trails with many selectors. The figure per op is one record through all
// 100 trails.
func BenchmarkSelect(b *testing.B) {
	real := audittest.RealRecords(b)
	recs := make([]audit.Record, 0, len(real))
	for _, r := range real {
		x, err := audit.Extract(r.Raw)
		if err == nil {
			recs = append(recs, x)
		}
	}
	// spread: the trails belong to the records' accounts in turn, so most
	// are ruled out by account. one-account: every trail belongs to the
	// record's account, so every selector is evaluated (the worst case).
	b.Run("spread", func(b *testing.B) { benchSelect(b, recs, benchTrails(recs)) })
	counts := map[string]int{}
	for _, r := range recs {
		counts[r.Account]++
	}
	top := ""
	for a, n := range counts {
		if n > counts[top] {
			top = a
		}
	}
	var mine []audit.Record
	for _, r := range recs {
		if r.Account == top {
			mine = append(mine, r)
		}
	}
	trails := benchTrails(mine)
	for i := range trails {
		trails[i].IsMultiRegionTrail = true
	}
	b.Run("one-account", func(b *testing.B) { benchSelect(b, mine, trails) })
	// one trail of each kind alone (basic with 5 selectors and 250 data
	// resources, advanced with 5 selectors of 4 field selectors, default),
	// in the records' account.
	for i, kind := range []string{"basic", "advanced", "default"} {
		b.Run("one-trail-"+kind, func(b *testing.B) { benchSelect(b, mine, trails[i:i+1]) })
	}
}

func benchSelect(b *testing.B, recs []audit.Record, trails []Trail) {
	b.ReportAllocs()
	b.ResetTimer()
	selected := 0
	for i := 0; i < b.N; i++ {
		r := &recs[i%len(recs)]
		for t := range trails {
			if trails[t].Selects(r) {
				selected++
			}
		}
	}
	b.ReportMetric(float64(selected)/float64(b.N), "trails/record")
}

// BenchmarkDeliver measures delivery: the real records, fed to 10 logging
// trails of their most common account, written as gzipped log files to a
// local bucket. The figure per op is one record delivered by every trail.
func BenchmarkDeliver(b *testing.B) {
	ctx := context.Background()
	real := audittest.RealRecordsInRealRegions(b)
	var recs []audit.Record
	for _, r := range real {
		if x, err := audit.Extract(r.Raw); err == nil && x.Category != audit.CategoryInsight {
			recs = append(recs, x)
		}
	}
	counts := map[string]int{}
	top := ""
	for _, r := range recs {
		if counts[r.Account]++; counts[r.Account] > counts[top] {
			top = r.Account
		}
	}
	store := audittest.NewMemStore()
	n := 0
	for n < b.N {
		batch := make([]audit.Record, 0, 1000)
		for i := 0; i < 1000 && n < b.N; i++ {
			r := recs[n%len(recs)]
			r.Account = top
			r.EventID = fmt.Sprintf("bench-%d", n)
			batch = append(batch, r)
			n++
		}
		if _, err := store.Append(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	reg, err := OpenRegistry(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	reg.update(func(trails map[string]*Trail) error {
		for i := range 10 {
			t := &Trail{Name: fmt.Sprintf("trail-%d", i), Account: top, HomeRegion: "us-east-1", IsMultiRegionTrail: true,
				IncludeGlobalServiceEvents: true, S3BucketName: "logs", Logging: true}
			trails[t.ARN()] = t
		}
		return nil
	})
	bk, err := local.New("logs", b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	d := NewDeliverer(DeliveryConfig{Registry: reg, Feed: store, Bucket: func(string) (Bucket, bool) { return bk, true }, Interval: time.Hour})
	b.ReportAllocs()
	b.ResetTimer()
	d.DeliverOnce(ctx)
	b.StopTimer()
	for _, t := range reg.Trails() {
		if t.LatestDeliveryError != "" || t.Position != int64(b.N) {
			b.Fatalf("%s: position %d of %d, error %q", t.Name, t.Position, b.N, t.LatestDeliveryError)
		}
	}
}
