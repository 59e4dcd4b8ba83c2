package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// BenchmarkCallToVisible measures the time from an API call's response to
// its event being returned by LookupEvents (target: under 1 s), and the
// latency of LookupEvents itself through the whole stack (HTTP, SigV4,
// DuckDB, recording).
func BenchmarkCallToVisible(b *testing.B) {
	ts := startServer(b, fmt.Sprintf(twoAccounts, 90), "")
	c := ts.client("AKIAALICE00000000001", "alice-secret-key", "us-east-1")
	ctx := context.Background()
	var visible, lookup []time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := c.LookupEvents(ctx, &cloudtrail.LookupEventsInput{MaxResults: aws.Int32(50)}); err != nil {
			b.Fatal(err)
		}
		lookup = append(lookup, time.Since(t0))
		// The probe: a call no poll makes (the polls are recorded too).
		_, err := c.StopLogging(ctx, &cloudtrail.StopLoggingInput{Name: aws.String("probe")})
		done := time.Now()
		reqID := requestIDOf(err)
		for {
			page, err := c.LookupEvents(ctx, &cloudtrail.LookupEventsInput{MaxResults: aws.Int32(50),
				LookupAttributes: []types.LookupAttribute{{AttributeKey: types.LookupAttributeKeyEventName, AttributeValue: aws.String("StopLogging")}}})
			if err != nil {
				b.Fatal(err)
			}
			if slices.ContainsFunc(page.Events, func(e types.Event) bool {
				return strings.Contains(aws.ToString(e.CloudTrailEvent), `"requestID":"`+reqID+`"`)
			}) {
				break
			}
			if time.Now().After(testwait.End(b)) {
				b.Fatalf("event of request %s not visible before the binary's deadline (-timeout less %v)", reqID, testwait.Margin)
			}
		}
		visible = append(visible, time.Since(done))
	}
	slices.Sort(visible)
	slices.Sort(lookup)
	b.ReportMetric(ms(visible[len(visible)/2]), "visible-p50-ms")
	b.ReportMetric(ms(visible[len(visible)*99/100]), "visible-p99-ms")
	b.ReportMetric(ms(lookup[len(lookup)/2]), "lookup-p50-ms")
}

// requestIDOf returns the request ID of a failed call.
func requestIDOf(err error) string {
	var re interface{ ServiceRequestID() string }
	if errors.As(err, &re) {
		return re.ServiceRequestID()
	}
	return ""
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkImportOffline runs `cairn import` of the real data (392 files,
// 4,373 records, 327 of them refused for made-up regions) into a fresh
// data dir per iteration: reading, the store's appends and its close.
// bench/import.sh measures the same on a large generated corpus.
func BenchmarkImportOffline(b *testing.B) {
	root := audittest.RealDataDir(b)
	cfg := filepath.Join(b.TempDir(), "cairn.yaml")
	if err := os.WriteFile(cfg, []byte("accounts:\n  - id: \"123456789012\"\n    users:\n      - name: b\n"+
		"        access_keys:\n          - id: AKIABENCH00000000001\n            secret: s\nevent_history:\n  retention_days: 0\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	var records int
	for b.Loop() {
		dir := b.TempDir()
		var out, errs strings.Builder
		err := importCmd(context.Background(), []string{"--data-dir", dir, "--config", cfg, "--no-progress",
			"--output", "json", root}, &out, &errs)
		if err != nil && !strings.Contains(out.String(), `"Imported"`) {
			b.Fatalf("import: %v\n%s", err, errs.String())
		}
		records += 4373
	}
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
}
