package builtin

import (
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"testing"

	"github.com/cairn-audit/cairn/internal/sigma"
)

// realRaws returns every real record's JSON, as stored, and eventName,
// in folder order.
func realRaws(t testing.TB) []sigma.Input {
	t.Helper()
	var out []sigma.Input
	for _, dir := range []string{"datadog-stratus-red-team", "invictus-ir-aws_dataset", "opensearch-catalog",
		"nexthink-cloudtrail-s3-to-kinesis", "plaso", "traildiscover"} {
		for _, f := range folderFiles(t, dir) {
			for _, raw := range readRaw(t, f) {
				var head struct{ EventName string }
				if err := json.Unmarshal(raw, &head); err != nil {
					t.Fatal(err)
				}
				out = append(out, sigma.Input{Raw: raw, EventName: head.EventName})
			}
		}
	}
	return out
}

// TestRunBatchIsRun: RunBatch (decoding and rules on several goroutines)
// finds what Run finds record by record, in the same order, with the
// report window applied alike.
func TestRunBatchIsRun(t *testing.T) {
	rules, err := Rules()
	if err != nil {
		t.Fatal(err)
	}
	raws := realRaws(t)
	raws = append(raws, sigma.Input{Raw: []byte(`not json`)}, sigma.Input{Raw: []byte(`[1,2]`), EventName: "StopLogging"},
		sigma.Input{Raw: []byte(`[1,2]`), EventName: "ListBuckets"})
	report := func(r sigma.Record) bool { return r.Str("eventTime") >= "2023-07-10T12:00:00Z" }
	var one, batched []sigma.Finding
	h := sigma.Hunt{Rules: rules, Stateful: Stateful(Config{}), Report: report}
	for _, raw := range raws {
		if rec, err := sigma.DecodeRecord(raw.Raw); err == nil {
			h.Run(rec, func(f sigma.Finding) { one = append(one, f) })
		}
	}
	// with the eventName given (most records decoded in brief) and without
	for _, named := range []bool{true, false} {
		in := slices.Clone(raws)
		if !named {
			for i := range in {
				in[i].EventName = ""
			}
		}
		h = sigma.Hunt{Rules: rules, Stateful: Stateful(Config{}), Report: report}
		bad := 0
		batched = nil
		for i := 0; i < len(in); i += 700 {
			bad += h.RunBatch(in[i:min(i+700, len(in))], 3, func(f sigma.Finding) { batched = append(batched, f) })
		}
		if bad != 3 {
			t.Errorf("named %v: bad = %d; want the 3 records that are no JSON object", named, bad)
		}
		if len(one) < 100 || !reflect.DeepEqual(one, batched) {
			t.Errorf("named %v: Run found %d, RunBatch %d; want the same findings (100+)", named, len(one), len(batched))
		}
	}
	// without stateful hunts, records no rule may match are not decoded
	h = sigma.Hunt{Rules: rules}
	n := 0
	h.RunBatch(raws, 2, func(sigma.Finding) { n++ })
	if n == 0 {
		t.Error("rules alone found nothing")
	}
}

// BenchmarkRetroHunt measures a retro hunt as cairn hunt runs it, store
// reading aside: 100 rules (the built-in ones, repeated) and the stateful
// hunts over the real records, raw JSON in, findings out, decoding and
// rules on GOMAXPROCS goroutines (workers=N) or one (workers=1). It
// reports events/s and what 10 million events would take.
func BenchmarkRetroHunt(b *testing.B) {
	rules, err := Rules()
	if err != nil {
		b.Fatal(err)
	}
	var all []*sigma.Rule
	for len(all) < 100 {
		all = append(all, rules...)
	}
	all = all[:100]
	raws := realRaws(b)
	for _, workers := range []int{1, runtime.GOMAXPROCS(0)} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			h := sigma.Hunt{Rules: all, Stateful: Stateful(Config{})}
			n := 0
			cpu0 := cpuTime()
			for b.Loop() {
				h.RunBatch(raws, workers, func(sigma.Finding) {})
				n += len(raws)
			}
			// On a shared machine wall time says little; the process's
			// CPU time per event says what one free core would take.
			cpuPerEvent := (cpuTime() - cpu0).Seconds() / float64(n)
			perSec := float64(n) / b.Elapsed().Seconds()
			b.ReportMetric(perSec, "events/s")
			b.ReportMetric(cpuPerEvent*1e6, "cpu-µs/event")
			b.ReportMetric(10e6*cpuPerEvent, "cpu-s/10M-events")
			b.ReportMetric(0, "ns/op")
		})
	}
}
