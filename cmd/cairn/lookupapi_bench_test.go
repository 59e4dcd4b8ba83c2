package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/cairn-audit/cairn/internal/audit/audittest"
)

// lookupAPIConfig is the config of BenchmarkLookupAPI: the account of most
// of the real records (the invictus data set, us-east-1), retention off so
// that their old times stay visible.
const lookupAPIConfig = `event_history:
  retention_days: 0
accounts:
  - id: "123837392027"
    users:
      - name: bench
        access_keys:
          - id: AKIABENCH00000000001
            secret: bench-secret-key
`

// BenchmarkLookupAPI measures LookupEvents end to end, as a client sees it:
// aws-sdk-go-v2 (SigV4) over HTTP to serve, on a data dir filled by `cairn
// import` from .json.gz files of 500 records in the S3 layout (bench/gen:
// the real records repeated with fresh eventIDs). Each sub-benchmark asks
// for the first page of 50 of one lookup kind and reports p50 and p99 of
// the latency and the process's CPU time per request (client and server
// share the process: the client's part is the SDK's signing and decoding).
//
// CAIRN_BENCH_API_EVENTS sets the corpus (default 20,000: quick);
// CAIRN_BENCH_API_DAYS=n spreads its times over n days (bench/gen -days;
// default 0, the real records' own times, which every copy then shares);
// CAIRN_BENCH_API_KEEP=DIR keeps the imported data dir in DIR and reuses it
// (each run serves a copy of it, so every run starts on a store just
// imported).
//
//	CAIRN_BENCH_API_EVENTS=200000 go test -run '^$' -bench LookupAPI -benchtime 300x ./cmd/cairn/
func BenchmarkLookupAPI(b *testing.B) {
	n := 20000
	if v, err := strconv.Atoi(os.Getenv("CAIRN_BENCH_API_EVENTS")); err == nil && v > 0 {
		n = v
	}
	days, _ := strconv.Atoi(os.Getenv("CAIRN_BENCH_API_DAYS"))
	dataDir := lookupAPIStore(b, n, days)
	if os.Getenv("CAIRN_BENCH_API_KEEP") != "" {
		// Serve a copy: the server's start-up work (Lake's position, the
		// self-recorded lookups) must find the store as the import left it.
		fresh := filepath.Join(b.TempDir(), "data")
		if out, err := exec.Command("cp", "-r", dataDir, fresh).CombinedOutput(); err != nil {
			b.Fatalf("copy the kept data dir: %v\n%s", err, out)
		}
		dataDir = fresh
	}
	ts := startServer(b, lookupAPIConfig, dataDir)
	c := newCloudTrail(ts.endpoint, "us-east-1", "AKIABENCH00000000001", "bench-secret-key", 1)
	ctx := context.Background()
	first, err := c.LookupEvents(ctx, &cloudtrail.LookupEventsInput{MaxResults: aws.Int32(50)})
	if err != nil {
		b.Fatal(err)
	}
	var user string
	for _, e := range first.Events {
		if u := aws.ToString(e.Username); u != "" {
			user = u
			break
		}
	}
	attr := func(k types.LookupAttributeKey, v string) []types.LookupAttribute {
		return []types.LookupAttribute{{AttributeKey: k, AttributeValue: aws.String(v)}}
	}
	kinds := []struct {
		name  string
		attrs []types.LookupAttribute
	}{
		{"none", nil},
		{"EventName-common", attr(types.LookupAttributeKeyEventName, "Decrypt")},
		{"EventName-rare", attr(types.LookupAttributeKeyEventName, "CreateDBInstance")},
		{"ReadOnly-false", attr(types.LookupAttributeKeyReadOnly, "false")},
		{"Username", attr(types.LookupAttributeKeyUsername, user)},
		{"AccessKeyId", attr(types.LookupAttributeKeyAccessKeyId, "AKIATFQR7NSC8Q4X20BJ")},
		// Again, once the server's start-up work (Lake's and Insights'
		// catch-up over the imported records) no longer runs beside it.
		{"none-again", nil},
	}
	b.Logf("LOAD events=%d days=%d user=%q load=%s", n, days, user, loadAvg())
	// When the Insights runner's catch-up over the imported records ends
	// (its feed position reaches n), so that a run tells which kinds ran
	// beside it.
	served := time.Now()
	caughtUp := make(chan time.Duration, 1)
	pollCtx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	go func() {
		for pollCtx.Err() == nil {
			if feedPosition(ts.endpoint) >= float64(n) {
				caughtUp <- time.Since(served)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	defer func() {
		select {
		case d := <-caughtUp:
			b.Logf("CATCHUP the Insights runner read the %d imported records in %v after the first lookup", n, d.Round(time.Millisecond))
		default:
			b.Logf("CATCHUP the Insights runner had not read the %d imported records after %v", n, time.Since(served).Round(time.Millisecond))
		}
	}()
	for _, k := range kinds {
		b.Run(k.name, func(b *testing.B) {
			in := &cloudtrail.LookupEventsInput{MaxResults: aws.Int32(50), LookupAttributes: k.attrs}
			if _, err := c.LookupEvents(ctx, in); err != nil { // warm
				b.Fatal(err)
			}
			var lat []time.Duration
			cpu0 := cpuTime()
			for b.Loop() {
				t0 := time.Now()
				out, err := c.LookupEvents(ctx, in)
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
				if len(out.Events) == 0 {
					b.Fatalf("%s: no events", k.name)
				}
			}
			cpu := cpuTime() - cpu0
			slices.Sort(lat)
			b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
			b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
			b.ReportMetric(ms(cpu)/float64(len(lat)), "cpu-ms/op")
		})
	}
}

// lookupAPIStore returns a data dir holding n imported records.
func lookupAPIStore(b *testing.B, n, days int) string {
	b.Helper()
	dir := b.TempDir()
	if keep := os.Getenv("CAIRN_BENCH_API_KEEP"); keep != "" {
		dir = filepath.Join(keep, fmt.Sprintf("imported-%d-days%d", n, days))
		if _, err := os.Stat(filepath.Join(dir, "complete")); err == nil {
			return dir
		}
		if err := os.RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	src := b.TempDir()
	gen := exec.Command("go", "run", "../../bench/gen", "-n", strconv.Itoa(n), "-per-file", "500", "-days", strconv.Itoa(days),
		"-src", audittest.RealDataDir(b), "-out", src)
	if out, err := gen.CombinedOutput(); err != nil {
		b.Fatalf("bench/gen: %v\n%s", err, out)
	}
	cfg := filepath.Join(b.TempDir(), "cairn.yaml")
	if err := os.WriteFile(cfg, []byte(lookupAPIConfig), 0o600); err != nil {
		b.Fatal(err)
	}
	var out, errs strings.Builder
	err := importCmd(context.Background(), []string{"--data-dir", dir, "--config", cfg, "--no-progress", "--output", "json", src}, &out, &errs)
	if err != nil && !strings.Contains(out.String(), `"Imported"`) {
		b.Fatalf("import: %v\n%s", err, errs.String())
	}
	if os.Getenv("CAIRN_BENCH_API_KEEP") != "" {
		if err := os.WriteFile(filepath.Join(dir, "complete"), nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(b))[:min(3, len(strings.Fields(string(b))))], " ")
}

// feedPosition is the server's cairn_insights_feed_position (-1 when it
// cannot be read).
func feedPosition(endpoint string) float64 {
	resp, err := http.Get(endpoint + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "cairn_insights_feed_position "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}
