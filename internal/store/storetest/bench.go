package storetest

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
)

// BenchLookups runs the lookups LookupEvents makes against st, a store of
// n records of account and region that holds sample (records spread over
// it, oldest first) and needle's rare records, as sub-benchmarks reporting
// p50 and p99 latency and the process's CPU per lookup. Each backend's
// BenchmarkLookup loads its store and calls it, so that both measure the
// same cases.
func BenchLookups(b *testing.B, st audit.Store, n int, sample []audit.Record, needle Spec, account, region string) {
	mid := sample[len(sample)/2]
	common := sample[len(sample)-1]
	base := audit.Query{Account: account, Region: region, Category: audit.CategoryManagement, Limit: 50}
	with := func(attrs ...audit.Attribute) audit.Query { q := base; q.Attributes = attrs; return q }
	deep := base
	deep.After = &audit.Cursor{Time: mid.Time, EventID: mid.EventID}
	resName := "none"
	for _, r := range sample {
		if len(r.Resources) > 0 && r.Resources[0].Name != "" {
			resName = r.Resources[0].Name
		}
	}
	cases := []struct {
		name string
		qs   []audit.Query // cycled through
	}{
		{"TimePageNewest", []audit.Query{base}},
		{"TimePageDeep", []audit.Query{deep}},
		{"EventIdRare", nil},
		{"EventNameCommon", []audit.Query{with(audit.Attribute{Key: audit.AttrEventName, Value: common.EventName})}},
		{"EventNameRare", []audit.Query{with(audit.Attribute{Key: audit.AttrEventName, Value: needle.EventName})}},
		{"AccessKeyIdPool", []audit.Query{with(audit.Attribute{Key: audit.AttrAccessKeyID, Value: "ASIAQ000000000000042"})}},
		{"AccessKeyIdRare", []audit.Query{with(audit.Attribute{Key: audit.AttrAccessKeyID, Value: needle.AccessKeyID})}},
		{"ResourceNameCommon", []audit.Query{with(audit.Attribute{Key: audit.AttrResourceName, Value: resName})}},
		{"ResourceNameRare", []audit.Query{with(audit.Attribute{Key: audit.AttrResourceName, Value: needle.Bucket})}},
		{"ReadOnlyFalseAndEventSource", []audit.Query{with(audit.Attribute{Key: audit.AttrReadOnly, Value: "false"},
			audit.Attribute{Key: audit.AttrEventSource, Value: common.EventSource})}},
		{"NoMatch", []audit.Query{with(audit.Attribute{Key: audit.AttrEventName, Value: "NoSuchEvent"})}},
		// A responder's lookups: every account, every region.
		{"AnyAccountTimePageNewest", []audit.Query{anyAccount(base)}},
		{"AnyAccountAnyRegionAccessKeyIdRare", []audit.Query{anyRegion(anyAccount(with(audit.Attribute{Key: audit.AttrAccessKeyID, Value: needle.AccessKeyID})))}},
	}
	for _, r := range sample {
		cases[2].qs = append(cases[2].qs, with(audit.Attribute{Key: audit.AttrEventID, Value: r.EventID}))
	}
	for _, c := range cases {
		b.Run(fmt.Sprintf("%s/events=%d", c.name, n), func(b *testing.B) {
			// Steady state, as in a running server: the generator's
			// garbage collected, and each query of the case run once so
			// that the engine's buffers hold its pages (a store just
			// opened reads them from disk).
			runtime.GC()
			for _, q := range c.qs {
				if _, err := st.Lookup(context.Background(), q); err != nil {
					b.Fatal(err)
				}
			}
			var lat []time.Duration
			i := 0
			cpu0 := cpuTime()
			for b.Loop() {
				t0 := time.Now()
				p, err := st.Lookup(context.Background(), c.qs[i%len(c.qs)])
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
				if c.name == "EventIdRare" && len(p.Records) != 1 {
					b.Fatalf("EventId lookup found %d records; want 1", len(p.Records))
				}
				i++
			}
			// CPU time of the whole process per lookup (an embedded
			// engine's threads included, a server's backends not): on a
			// shared machine it varies less than latency.
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(len(lat)), "cpu-ms/op")
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

func anyAccount(q audit.Query) audit.Query { q.AnyAccount, q.Account = true, ""; return q }
func anyRegion(q audit.Query) audit.Query  { q.AnyRegion, q.Region = true, ""; return q }

// cpuTime returns the user and system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
