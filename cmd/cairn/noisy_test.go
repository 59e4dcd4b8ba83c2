package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/cairn-audit/cairn/internal/audit"
	cairnclient "github.com/cairn-audit/cairn/internal/client"
	"github.com/cairn-audit/cairn/internal/importer"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// accountRecord is a record of account with a unique event ID (n, tag).
func accountRecord(account, tag string, n int, at time.Time) audit.Record {
	raw := fmt.Appendf(nil, `{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","principalId":"AIDA%[1]s","arn":"arn:aws:iam::%[1]s:user/u","accountId":"%[1]s","accessKeyId":"AKIAX","userName":"u"},"eventTime":%[2]q,"eventSource":"s3.amazonaws.com","eventName":"ListBuckets","awsRegion":"us-east-1","sourceIPAddress":"192.0.2.10","userAgent":"noisy-test","requestParameters":null,"responseElements":null,"requestID":"REQ%[3]s%[4]d","eventID":"%[5]s","readOnly":true,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"%[1]s","eventCategory":"Management"}`,
		account, at.UTC().Format(time.RFC3339), tag, n, eventID(tag, n))
	return audit.Record{Raw: raw}
}

// eventID is a UUID-shaped event ID unique to (tag, n).
func eventID(tag string, n int) string {
	h := 0
	for _, c := range tag {
		h = h*31 + int(c)
	}
	return fmt.Sprintf("%08x-0000-4000-8000-%012x", uint32(h), n)
}

// importSink is an ImportRecords client of an account that does not retry:
// each throttled call is seen.
func importSink(ts *testServer, akid, secret string, conns int) *cairnclient.Importer {
	return importSinkAttempts(ts, akid, secret, conns, 1)
}

// importSinkAttempts is importSink whose calls are sent up to attempts
// times, backing off after a ThrottlingException or a 5xx as `cairn
// import --endpoint-url` does.
func importSinkAttempts(ts *testServer, akid, secret string, conns, attempts int) *cairnclient.Importer {
	return cairnclient.NewImporter(cairnclient.ImporterConfig{Endpoint: ts.endpoint, Region: "us-east-1", MaxAttempts: attempts,
		HTTPClient:  &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}},
		Credentials: credentials.NewStaticCredentialsProvider(akid, secret, "")})
}

// noRetryOnRefusal is an SDK client that retries only connection errors:
// a ThrottlingException or a 5xx reaches the test.
func noRetryOnRefusal(ts *testServer, akid, secret string) *cloudtrail.Client {
	return cloudtrail.New(cloudtrail.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(ts.endpoint),
		Credentials: credentials.NewStaticCredentialsProvider(akid, secret, ""),
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 3
			o.Retryables = []retry.IsErrorRetryable{retry.RetryableConnectionError{}}
		}),
	})
}

// flood sends ImportRecords calls of size records for account 111111111111
// on conns connections until ctx ends, counting calls and throttled ones.
func flood(ctx context.Context, ts *testServer, conns, size int) (calls, throttled *atomic.Int64, wait func()) {
	calls, throttled = new(atomic.Int64), new(atomic.Int64)
	sink := importSink(ts, "AKIAALICE00000000001", "alice-secret-key", conns)
	var wg sync.WaitGroup
	var seq atomic.Int64
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				recs := make([]audit.Record, size)
				for i := range recs {
					recs[i] = accountRecord("111111111111", "flood", int(seq.Add(1)), time.Now())
				}
				_, _, err := sink.AppendReport(ctx, recs)
				calls.Add(1)
				var re *cairnclient.ImportError
				if errors.As(err, &re) && re.Code == "ThrottlingException" {
					throttled.Add(1)
				}
			}
		}()
	}
	return calls, throttled, wg.Wait
}

// victim makes calls of account 222222222222 one after another until ctx
// ends: ImportRecords of a few records, LookupEvents, DescribeTrails. It
// returns each call's outcome ("" for success) and duration.
type outcome struct {
	op   string
	code string
	d    time.Duration
}

func victim(ctx context.Context, t testing.TB, ts *testServer, minCalls int) []outcome {
	sink := importSink(ts, "AKIABOB0000000000001", "bob-secret-key", 1)
	c := noRetryOnRefusal(ts, "AKIABOB0000000000001", "bob-secret-key")
	var out []outcome
	code := func(err error) string {
		if err == nil {
			return ""
		}
		var re *cairnclient.ImportError
		if errors.As(err, &re) {
			return re.Code
		}
		if c := errCode(err); c != "" {
			return c
		}
		return err.Error()
	}
	n := 0
	for i := 0; ctx.Err() == nil || i < minCalls; i++ {
		start := time.Now()
		var err error
		op := ""
		switch i % 3 {
		case 0:
			op = "ImportRecords"
			recs := []audit.Record{accountRecord("222222222222", "victim", n, time.Now()), accountRecord("222222222222", "victim", n+1, time.Now())}
			n += 2
			var res audit.AppendResult
			var fails []importer.Failure
			res, fails, err = sink.AppendReport(context.Background(), recs)
			if err == nil && (res.Inserted != 2 || len(fails) != 0) {
				t.Errorf("victim ImportRecords = %+v, %v; want 2 inserted", res, fails)
			}
		case 1:
			op = "LookupEvents"
			_, err = c.LookupEvents(context.Background(), &cloudtrail.LookupEventsInput{MaxResults: aws.Int32(5)})
		case 2:
			op = "DescribeTrails"
			_, err = c.DescribeTrails(context.Background(), &cloudtrail.DescribeTrailsInput{})
		}
		out = append(out, outcome{op, code(err), time.Since(start)})
	}
	return out
}

// TestNoisyNeighbourIsThrottledAlone floods the ingest pipeline from one
// account (ImportRecords on many connections, large calls and small ones)
// while another account calls ImportRecords, LookupEvents and
// DescribeTrails without retrying refusals: the flooding account gets
// ThrottlingException (the flood did fill its share), the other account's
// calls all succeed.
func TestNoisyNeighbourIsThrottledAlone(t *testing.T) {
	for _, tc := range []struct {
		name         string
		conns, size  int
		ingestConfig string
	}{
		{"large calls", 32, 500, "ingest:\n  queue_size: 64\n  account_max_calls: 8\n  account_queue_records: 2000\n"},
		{"small calls", 96, 1, "ingest:\n  queue_size: 64\n  account_max_calls: 8\n  account_queue_records: 2000\n"},
		{"the whole queue", 96, 20, "ingest:\n  queue_size: 16\n  account_max_calls: 16\n  account_queue_records: 100000\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, fmt.Sprintf(twoAccounts, 0)+tc.ingestConfig, "")
			ctx, stop := context.WithCancel(context.Background())
			defer stop()
			calls, throttled, wait := flood(ctx, ts, tc.conns, tc.size)
			// The other account starts once the flood has filled its share
			// (a first ThrottlingException): on a loaded machine, under
			// -race, that can take seconds: waited for, not timed.
			testwait.Until(t, "a first ThrottlingException of the flooding account", func() bool { return throttled.Load() > 0 })
			vctx, vstop := context.WithTimeout(ctx, 1500*time.Millisecond)
			outs := victim(vctx, t, ts, 15)
			vstop()
			stop()
			wait()
			if throttled.Load() == 0 {
				t.Errorf("the flooding account made %d calls and none was throttled: the flood did not fill its share, the test proves nothing", calls.Load())
			}
			failed := 0
			for _, o := range outs {
				if o.code != "" {
					failed++
					if failed <= 5 {
						t.Errorf("the other account's %s failed: %s", o.op, o.code)
					}
				}
			}
			if failed > 0 {
				t.Errorf("%d of the other account's %d calls failed while one account flooded; want none", failed, len(outs))
			}
			t.Logf("flood: %d calls, %d throttled; other account: %d calls, p99 %v", calls.Load(), throttled.Load(), len(outs), p99(outs))
		})
	}
}

func p99(outs []outcome) time.Duration { return quantile(outs, 99) }

// quantile returns the q-th percentile of the calls' durations.
func quantile(outs []outcome, q int) time.Duration {
	if len(outs) == 0 {
		return 0
	}
	ds := make([]time.Duration, len(outs))
	for i, o := range outs {
		ds[i] = o.d
	}
	slices.Sort(ds)
	return ds[min(len(ds)-1, len(ds)*q/100)]
}

// BenchmarkNoisyNeighbour measures, for docs/security.md, another
// account's calls while one account floods ImportRecords: its failure
// rate and p99 latency (reported as metrics). CAIRN_FLOOD_CONNS sets the
// flooding connections (default 200; the probe used 1,100) and
// CAIRN_FLOOD_SECONDS the flood's length (default 3).
func BenchmarkNoisyNeighbour(b *testing.B) {
	conns, secs := 200, 3
	if v, err := strconv.Atoi(os.Getenv("CAIRN_FLOOD_CONNS")); err == nil && v > 0 {
		conns = v
	}
	if v, err := strconv.Atoi(os.Getenv("CAIRN_FLOOD_SECONDS")); err == nil && v > 0 {
		secs = v
	}
	for b.Loop() {
		ts := startServer(b, fmt.Sprintf(twoAccounts, 0), "")
		ctx, stop := context.WithTimeout(context.Background(), time.Duration(secs)*time.Second)
		calls, throttled, wait := flood(ctx, ts, conns, 100)
		time.Sleep(500 * time.Millisecond)
		outs := victim(ctx, b, ts, 30)
		stop()
		wait()
		failed := 0
		for _, o := range outs {
			if o.code != "" {
				failed++
			}
		}
		if os.Getenv("CAIRN_FLOOD_VERBOSE") != "" {
			for _, o := range outs {
				b.Log(o.op, o.code, o.d)
			}
		}
		b.ReportMetric(float64(failed)/float64(len(outs))*100, "other-failed-%")
		b.ReportMetric(float64(p99(outs).Milliseconds()), "other-p99-ms")
		b.ReportMetric(float64(quantile(outs, 50).Milliseconds()), "other-p50-ms")
		b.ReportMetric(float64(quantile(outs, 100).Milliseconds()), "other-max-ms")
		b.ReportMetric(float64(len(outs)), "other-calls")
		b.ReportMetric(float64(throttled.Load())/float64(max(1, calls.Load()))*100, "flood-throttled-%")
		b.ReportMetric(float64(calls.Load())/float64(secs), "flood-calls/s")
		ts.stop()
	}
}

// BenchmarkConcurrentAddTags measures AddTags from 200 concurrent clients
// of one account on one trail (every call rewrites the trail registry):
// calls/s, p50 and p99 of the successful calls, and the share refused.
func BenchmarkConcurrentAddTags(b *testing.B) {
	const clients = 200
	for b.Loop() {
		logs := b.TempDir()
		ts := startServer(b, fmt.Sprintf(twoAccounts, 0)+fmt.Sprintf("buckets:\n  - name: local-logs\n    local_dir: %s\n", logs), "")
		c := noRetryOnRefusal(ts, "AKIAALICE00000000001", "alice-secret-key")
		out, err := c.CreateTrail(context.Background(), &cloudtrail.CreateTrailInput{Name: aws.String("audit"), S3BucketName: aws.String("local-logs")})
		if err != nil {
			b.Fatal(err)
		}
		outs := concurrently(clients, 3*time.Second, func(i, n int) error {
			_, err := c.AddTags(context.Background(), &cloudtrail.AddTagsInput{ResourceId: out.TrailARN,
				TagsList: []types.Tag{{Key: aws.String(fmt.Sprint("k", i%40)), Value: aws.String(fmt.Sprint(n))}}})
			return err
		})
		report(b, outs, 3*time.Second)
		ts.stop()
	}
}

// BenchmarkConcurrentImports measures ImportRecords from 100 concurrent
// writers of one account, 10 records a call: calls/s, p50 and p99 of the
// successful calls, and the share throttled.
func BenchmarkConcurrentImports(b *testing.B) {
	const writers = 100
	for b.Loop() {
		ts := startServer(b, fmt.Sprintf(twoAccounts, 0), "")
		sink := importSink(ts, "AKIAALICE00000000001", "alice-secret-key", writers)
		var seq atomic.Int64
		outs := concurrently(writers, 3*time.Second, func(int, int) error {
			recs := make([]audit.Record, 10)
			for i := range recs {
				recs[i] = accountRecord("111111111111", "bench", int(seq.Add(1)), time.Now())
			}
			_, _, err := sink.AppendReport(context.Background(), recs)
			return err
		})
		report(b, outs, 3*time.Second)
		ts.stop()
	}
}

// concurrently runs call on n goroutines for d and returns every call's
// outcome.
func concurrently(n int, d time.Duration, call func(i, n int) error) []outcome {
	var (
		mu   sync.Mutex
		outs []outcome
		wg   sync.WaitGroup
	)
	end := time.Now().Add(d)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; time.Now().Before(end); k++ {
				start := time.Now()
				err := call(i, k)
				code := ""
				if err != nil {
					var re *cairnclient.ImportError
					if errors.As(err, &re) {
						code = re.Code
					} else if code = errCode(err); code == "" {
						code = "error"
					}
				}
				mu.Lock()
				outs = append(outs, outcome{code: code, d: time.Since(start)})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return outs
}

func report(b *testing.B, outs []outcome, d time.Duration) {
	var ok []time.Duration
	refused := 0
	for _, o := range outs {
		if o.code == "" {
			ok = append(ok, o.d)
		} else {
			refused++
		}
	}
	slices.Sort(ok)
	if len(ok) > 0 {
		b.ReportMetric(ms(ok[len(ok)/2]), "ok-p50-ms")
		b.ReportMetric(ms(ok[len(ok)*99/100]), "ok-p99-ms")
	}
	b.ReportMetric(float64(len(ok))/d.Seconds(), "ok-calls/s")
	b.ReportMetric(float64(refused)/float64(max(1, len(outs)))*100, "refused-%")
}
