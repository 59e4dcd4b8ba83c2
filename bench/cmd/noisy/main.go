// Command noisy measures one account's LookupEvents latency through a running
// cairn while another account is a noisy neighbour: it floods ImportRecords
// from many connections and runs cross joins in Lake. It prints the quiet
// account's p50/p95/p99 and failure count, and the noisy account's accepted
// and throttled calls. bench/noisy.sh starts the server and runs it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/awsclient"
	"github.com/cairn-audit/cairn/internal/client"
)

func main() {
	endpoint := flag.String("endpoint", "http://127.0.0.1:8080", "cairn endpoint")
	region := flag.String("region", "us-east-1", "region")
	noisyAcct := flag.String("noisy-account", "111111111111", "noisy account ID")
	noisyKey := flag.String("noisy-key", "", "noisy account's access key ID:secret")
	quietKey := flag.String("quiet-key", "", "quiet account's access key ID:secret")
	importers := flag.Int("importers", 100, "noisy ImportRecords connections")
	joins := flag.Int("joins", 10, "noisy concurrent cross-join queries (0: none)")
	quiet := flag.Int("quiet-clients", 2, "quiet account's lookup clients")
	dur := flag.Duration("duration", 30*time.Second, "how long the noise lasts")
	flag.Parse()
	split := func(s string) (string, string) {
		for i := range s {
			if s[i] == ':' {
				return s[:i], s[i+1:]
			}
		}
		log.Fatalf("key %q: want ID:SECRET", s)
		return "", ""
	}
	nid, nsec := split(*noisyKey)
	qid, qsec := split(*quietKey)
	sdkClient := func(id, sec string) *cloudtrail.Client {
		return cloudtrail.New(cloudtrail.Options{Region: *region, BaseEndpoint: aws.String(*endpoint),
			Credentials: credentials.NewStaticCredentialsProvider(id, sec, ""), RetryMaxAttempts: 1,
			HTTPClient: awsclient.HTTPClient(nil)})
	}
	noisy, quietC := sdkClient(nid, nsec), sdkClient(qid, qsec)

	// Quiet baseline first, alone.
	base := lookups(context.Background(), quietC, *quiet, 5*time.Second)
	fmt.Printf("quiet alone:      %s\n", base)

	// The noisy account's event data store, filled with its own calls,
	// before the noise starts.
	var eds string
	if *joins > 0 {
		out, err := noisy.CreateEventDataStore(context.Background(), &cloudtrail.CreateEventDataStoreInput{
			Name: aws.String(fmt.Sprintf("noisy-%d", time.Now().UnixNano())), TerminationProtectionEnabled: aws.Bool(false)})
		if err != nil {
			log.Fatalf("CreateEventDataStore: %v", err)
		}
		eds = *out.EventDataStoreArn
		eds = eds[len(eds)-36:]
		for i := 0; i < 300; i++ {
			noisy.DescribeTrails(context.Background(), &cloudtrail.DescribeTrailsInput{})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *dur)
	defer cancel()
	var wg sync.WaitGroup
	var accepted, throttled, failed atomic.Int64
	var seq atomic.Int64
	for w := 0; w < *importers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sink := client.NewImporter(client.ImporterConfig{Endpoint: *endpoint, Region: *region,
				Credentials: credentials.NewStaticCredentialsProvider(nid, nsec, ""), MaxAttempts: 1,
				HTTPClient: &http.Client{Timeout: time.Minute}})
			for ctx.Err() == nil {
				recs := make([]audit.Record, 100)
				for i := range recs {
					n := seq.Add(1)
					raw := fmt.Sprintf(`{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","accountId":"%s","userName":"noisy"},"eventTime":"%s","eventSource":"s3.amazonaws.com","eventName":"PutObject","awsRegion":"%s","sourceIPAddress":"192.0.2.1","userAgent":"noisy","requestParameters":null,"responseElements":null,"requestID":"R%d","eventID":"00000000-0000-4000-8000-%012d","readOnly":false,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"%s","eventCategory":"Management"}`,
						*noisyAcct, time.Now().UTC().Format(time.RFC3339), *region, n, n, *noisyAcct)
					rec, err := audit.Extract([]byte(raw))
					if err != nil {
						log.Fatal(err)
					}
					recs[i] = rec
				}
				if _, err := sink.Append(ctx, recs); err != nil {
					var re *client.ImportError
					if errors.As(err, &re) && re.Code == "ThrottlingException" {
						throttled.Add(1)
					} else if ctx.Err() == nil {
						failed.Add(1)
					}
					continue
				}
				accepted.Add(1)
			}
		}()
	}
	if *joins > 0 {
		id := eds
		for j := 0; j < *joins; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					q, err := noisy.StartQuery(ctx, &cloudtrail.StartQueryInput{QueryStatement: aws.String(
						fmt.Sprintf("SELECT count(*) FROM %s a, %s b, %s c WHERE a.eventTime >= b.eventTime", id, id, id))})
					if err != nil {
						time.Sleep(100 * time.Millisecond)
						continue
					}
					for ctx.Err() == nil {
						d, err := noisy.DescribeQuery(ctx, &cloudtrail.DescribeQueryInput{QueryId: q.QueryId, EventDataStore: aws.String(id)})
						if err != nil || d.QueryStatus != types.QueryStatusQueued && d.QueryStatus != types.QueryStatusRunning {
							break
						}
						time.Sleep(200 * time.Millisecond)
					}
				}
			}()
		}
	}
	time.Sleep(2 * time.Second) // let the noise build up
	under := lookups(ctx, quietC, *quiet, *dur-4*time.Second)
	fmt.Printf("quiet, noisy on:  %s\n", under)
	cancel()
	wg.Wait()
	fmt.Printf("noisy ImportRecords calls (100 records): %d accepted, %d throttled, %d failed otherwise\n",
		accepted.Load(), throttled.Load(), failed.Load())
	os.Exit(0)
}

type stats struct {
	n, failed     int
	p50, p95, p99 time.Duration
}

func (s stats) String() string {
	return fmt.Sprintf("%d lookups, %d failed, p50 %.1f ms, p95 %.1f ms, p99 %.1f ms", s.n, s.failed,
		ms(s.p50), ms(s.p95), ms(s.p99))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// lookups runs LookupEvents (first page of 50) from n clients for d.
func lookups(ctx context.Context, c *cloudtrail.Client, n int, d time.Duration) stats {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var mu sync.Mutex
	var lat []time.Duration
	failed := 0
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				t := time.Now()
				_, err := c.LookupEvents(context.Background(), &cloudtrail.LookupEventsInput{MaxResults: aws.Int32(50)})
				el := time.Since(t)
				mu.Lock()
				if err != nil {
					failed++
				} else {
					lat = append(lat, el)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.Sort(lat)
	q := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	return stats{n: len(lat) + failed, failed: failed, p50: q(0.5), p95: q(0.95), p99: q(0.99)}
}
