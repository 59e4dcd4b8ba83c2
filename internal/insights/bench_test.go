package insights

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
)

// BenchmarkDetector is the detector's cost per observation on a week of
// realistic traffic (8 series of management calls, time order).
func BenchmarkDetector(b *testing.B) {
	obs := generate(20, 0, 7*day, weekStreams()...)
	b.ResetTimer()
	n := 0
	for n < b.N {
		d, _ := NewDetector(DefaultParams(), func(Insight) {})
		for _, o := range obs {
			d.Observe(o)
			n++
			if n == b.N {
				break
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
}

// BenchmarkDetectorManySeries spreads calls over 10,000 series of one
// account and region, the worst case for cache locality and minute closing.
func BenchmarkDetectorManySeries(b *testing.B) {
	const series = 10000
	names := make([]string, series)
	for i := range names {
		names[i] = fmt.Sprintf("Op%05d", i)
	}
	d, _ := NewDetector(DefaultParams(), func(Insight) {})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// 200 calls a second in all: each series is called every 50 s
		d.Observe(Observation{Time: t0.Add(time.Duration(i) * 5 * time.Millisecond), Account: acct, Region: reg,
			EventSource: "svc.amazonaws.com", EventName: names[i%series], Write: true})
	}
}

// BenchmarkObserveRecord is the cost of reading what the detector needs
// from a stored record (the live runner's per-record work before the
// detector), with and without an errorCode.
func BenchmarkObserveRecord(b *testing.B) {
	for _, errorCode := range []string{"", "AccessDenied"} {
		ro, mgmt := false, true
		e := audit.Event{EventVersion: "1.08", UserIdentity: &audit.UserIdentity{Type: "IAMUser", ARN: "arn:aws:iam::111111111111:user/alice",
			AccountID: "111111111111", UserName: "alice"}, EventTime: "2026-03-02T10:00:00Z", EventSource: "s3.amazonaws.com",
			EventName: "CreateBucket", AWSRegion: "us-east-1", UserAgent: "aws-cli/2.15.0 Python/3.11", ErrorCode: errorCode,
			RequestParameters: []byte(`{"bucketName":"a-bucket","Host":"a-bucket.s3.amazonaws.com"}`), EventID: "e1",
			ReadOnly: &ro, EventType: "AwsApiCall", ManagementEvent: &mgmt, RecipientAccountID: "111111111111", EventCategory: "Management"}
		raw, _ := e.Marshal()
		r, err := audit.Extract(raw)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("errorCode="+errorCode, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, ok := Observe(r); !ok {
					b.Fatal("not observed")
				}
			}
		})
	}
}

// TestMemoryPerSeries measures the heap a series takes (reported, and
// bounded so that a regression is noticed).
func TestMemoryPerSeries(t *testing.T) {
	const series = 20000
	names := make([]string, series)
	for i := range names {
		names[i] = fmt.Sprintf("Op%05d", i)
	}
	p := DefaultParams()
	p.MaxSeries = series
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	d, _ := NewDetector(p, func(Insight) {})
	for i := 0; i < series; i++ {
		d.Observe(Observation{Time: t0.Add(time.Duration(i) * time.Millisecond), Account: acct, Region: reg,
			EventSource: "svc.amazonaws.com", EventName: names[i], Write: true})
	}
	d.Flush(t0.Add(2 * time.Hour)) // every series judged at least once
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / series
	t.Logf("memory per series: %.0f bytes (%d series)", per, d.Stats().Series)
	if per > 4096 {
		t.Errorf("%.0f bytes per series, want at most 4 KiB", per)
	}
	runtime.KeepAlive(d)
}
