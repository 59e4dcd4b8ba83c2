package main

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/awsclient"
	cairnclient "github.com/cairn-audit/cairn/internal/client"
	"github.com/cairn-audit/cairn/internal/store/duckdb"
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
// aws-sdk-go-v2 (SigV4) over HTTP to `cairn serve` (this test binary run as
// the cairn command, a process of its own, logging at info), on a data dir
// filled by `cairn import` from .json.gz files of 500 records in the S3
// layout (bench/gen: the real records repeated with fresh eventIDs). Each
// kind's sub-benchmark asks for the first page of 50, one request after the
// other, and reports p50 and p99 of the latency, the server process's
// CPU time per request and the SDK client's (this process's). Then clients-8 sends 10*b.N requests, the kinds in
// turn, from 8 clients at once (requests/s, p50, p99, server CPU a request,
// the server's RSS: the largest sampled while they ran, and its peak since
// start); restart stops the server (SIGTERM), starts it again on the same
// data dir and reports each kind's p50 and p99 over the first b.N/4 rounds
// of lookups (a round: one lookup of each kind).
//
// CAIRN_BENCH_API_EVENTS sets the corpus (default 20,000: quick);
// CAIRN_BENCH_API_DAYS=n spreads its times over n days (bench/gen -days;
// default 0, the real records' own times, which every copy then shares);
// CAIRN_BENCH_API_LIVE=1 fills the data dir through a running server
// instead (ImportRecords calls of 500 records from 4 clients, the ingest
// pipeline's appends; the records of other accounts than the client's are
// refused, so the store holds the account's two thirds of the corpus);
// A store just filled is served once until the server's catch-up over its
// records is over (settleStore), so the kinds measure the steady state.
//
// CAIRN_BENCH_API_KEEP=DIR keeps the filled data dir in DIR and reuses it
// (each run serves a copy of it, so every run starts on a store just
// filled); with CAIRN_BENCH_API_FILL_ONLY=1 a run only fills it;
// CAIRN_BENCH_API_DIR=DIR serves DIR as it is. bench/lookupapi.sh runs it
// and prints the table.
//
//	CAIRN_BENCH_API_EVENTS=200000 go test -run '^$' -bench LookupAPI -benchtime 300x ./cmd/cairn/
func BenchmarkLookupAPI(b *testing.B) {
	n := 20000
	if v, err := strconv.Atoi(os.Getenv("CAIRN_BENCH_API_EVENTS")); err == nil && v > 0 {
		n = v
	}
	days, _ := strconv.Atoi(os.Getenv("CAIRN_BENCH_API_DAYS"))
	live := os.Getenv("CAIRN_BENCH_API_LIVE") != ""
	dataDir := os.Getenv("CAIRN_BENCH_API_DIR")
	switch {
	case dataDir != "":
		// Served as it is (bench/lookupapi.sh copies the kept one there
		// before it measures).
	case os.Getenv("CAIRN_BENCH_API_FILL_ONLY") != "":
		lookupAPIStore(b, n, days, live)
		return
	default:
		dataDir = lookupAPIStore(b, n, days, live)
	}
	if os.Getenv("CAIRN_BENCH_API_KEEP") != "" && os.Getenv("CAIRN_BENCH_API_DIR") == "" {
		// Serve a copy: the server's start-up work (Lake's position, the
		// self-recorded lookups) must find the store as it was filled.
		fresh := filepath.Join(b.TempDir(), "data")
		if out, err := exec.Command("cp", "-r", dataDir, fresh).CombinedOutput(); err != nil {
			b.Fatalf("copy the kept data dir: %v\n%s", err, out)
		}
		dataDir = fresh
	}
	cfgPath := filepath.Join(b.TempDir(), "cairn.yaml")
	// CAIRN_BENCH_API_MEMORY_LIMIT sets event_history.memory_limit (the
	// store's DuckDB memory_limit; issue 19).
	benchCfg := lookupAPIConfig
	if lim := os.Getenv("CAIRN_BENCH_API_MEMORY_LIMIT"); lim != "" {
		benchCfg = strings.Replace(benchCfg, "event_history:\n", "event_history:\n  memory_limit: "+lim+"\n", 1)
	}
	// CAIRN_BENCH_API_THREADS sets event_history.threads (the store's
	// DuckDB threads in the server).
	if n := os.Getenv("CAIRN_BENCH_API_THREADS"); n != "" {
		benchCfg = strings.Replace(benchCfg, "event_history:\n", "event_history:\n  threads: "+n+"\n", 1)
	}
	if err := os.WriteFile(cfgPath, []byte(benchCfg), 0o600); err != nil {
		b.Fatal(err)
	}
	logPath := filepath.Join(b.TempDir(), "serve.log")
	if p := os.Getenv("CAIRN_BENCH_API_SERVE_LOG"); p != "" {
		logPath = p // kept after the run (every start of the server appends to it)
	}
	// CAIRN_BENCH_API_LOG_LEVEL=debug: the server logs each commit's wait
	// and duration, among others.
	logLevel := "info"
	if v := os.Getenv("CAIRN_BENCH_API_LOG_LEVEL"); v != "" {
		logLevel = v
	}
	srv := startServerProcessLevel(b, dataDir, cfgPath, logPath, logLevel)
	// The kinds' client counts the bytes of the pages it is sent: the SDK
	// client's CPU a request goes with them (decoding the page's JSON).
	var pageBytes atomic.Int64
	c := cloudtrail.New(newCloudTrail(srv.endpoint, "us-east-1", "AKIABENCH00000000001", "bench-secret-key", 1).Options(),
		func(o *cloudtrail.Options) { o.HTTPClient = countingHTTPClient{o.HTTPClient, &pageBytes} })
	// The same client (SigV4, retries, HTTP, the SDK's middleware) but for
	// the page's decoding: it reads each page to its last byte and hands
	// the SDK's deserializer "{}" (wireOnly). Its latency is what the
	// server and the wire decide; the full client's, less this, is what
	// decoding the page into the SDK's structs adds.
	var wireBytes atomic.Int64
	wire := cloudtrail.New(c.Options(), func(o *cloudtrail.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Deserialize.Add(wireOnly{&wireBytes}, middleware.After)
		})
	})
	ctx := context.Background()
	first, err := c.LookupEvents(ctx, &cloudtrail.LookupEventsInput{MaxResults: aws.Int32(50)})
	if err != nil {
		b.Fatal(err)
	}
	if len(first.Events) == 0 {
		b.Fatal("no events")
	}
	// The data set's user (the invictus records'); the newest records of a
	// store filled live are the server's own records of the ImportRecords
	// calls, whose user is "bench".
	const user = "benjamin"
	attr := func(k types.LookupAttributeKey, v string) []types.LookupAttribute {
		return []types.LookupAttribute{{AttributeKey: k, AttributeValue: aws.String(v)}}
	}
	kinds := []lookupKind{
		{"none", nil},
		{"EventName-common", attr(types.LookupAttributeKeyEventName, "Decrypt")},
		{"EventName-rare", attr(types.LookupAttributeKeyEventName, "CreateDBInstance")},
		{"ReadOnly-false", attr(types.LookupAttributeKeyReadOnly, "false")},
		{"Username", attr(types.LookupAttributeKeyUsername, user)},
		{"AccessKeyId", attr(types.LookupAttributeKeyAccessKeyId, "AKIATFQR7NSC8Q4X20BJ")},
	}
	b.Logf("LOAD events=%d days=%d live=%v user=%q load=%s", n, days, live, user, loadAvg())
	for _, k := range kinds {
		b.Run(k.name, func(b *testing.B) {
			in := &cloudtrail.LookupEventsInput{MaxResults: aws.Int32(50), LookupAttributes: k.attrs}
			if _, err := c.LookupEvents(ctx, in); err != nil { // warm
				b.Fatal(err)
			}
			var lat []time.Duration
			cpu0, self0, bytes0 := procCPU(b, srv), statCPU(b, "/proc/self/stat"), pageBytes.Load()
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
			cpu1, self1, bytes1 := procCPU(b, srv), statCPU(b, "/proc/self/stat"), pageBytes.Load()
			reportLatency(b, "", lat)
			b.ReportMetric(ms(cpu1-cpu0)/float64(len(lat)), "cpu-ms/op")
			// The SDK client's CPU a request (signing, reading and
			// decoding the page's JSON): a kind whose records are
			// larger costs the client more, whatever the server does.
			b.ReportMetric(ms(self1-self0)/float64(len(lat)), "client-cpu-ms/op")
			b.ReportMetric(float64(bytes1-bytes0)/1000/float64(len(lat)), "page-kB")
			// Then as many lookups again, read to the page's last byte
			// and not decoded (wireOnly): "wire" p50 and p99, and the
			// client's CPU a request without the decoding
			// (CAIRN_BENCH_API_WIRE=0 leaves them out).
			if os.Getenv("CAIRN_BENCH_API_WIRE") == "0" {
				return
			}
			wlat := make([]time.Duration, 0, len(lat))
			wbytes0 := wireBytes.Load()
			for range len(lat) {
				t0 := time.Now()
				if _, err := wire.LookupEvents(ctx, in); err != nil {
					b.Fatal(err)
				}
				wlat = append(wlat, time.Since(t0))
			}
			// wireOnly fails a response it did not read to its
			// Content-Length; its count shows it was in the stack. (The
			// pages need not be those of the full pass: the newest
			// events, "none"'s page, are by then the server's own
			// records of that pass's lookups.)
			if wireBytes.Load() == wbytes0 {
				b.Fatalf("%s: the wire client read no page", k.name)
			}
			reportLatency(b, "wire-", wlat)
			self2 := statCPU(b, "/proc/self/stat")
			b.ReportMetric(ms(self2-self1)/float64(len(wlat)), "wire-client-cpu-ms/op")
			// And as many again from a server that answers every request
			// with this kind's page as cairn sent it, read once
			// (cannedServer): no store, no SigV4 check, nothing computed.
			// Its "canned" p50 is the floor the SDK client itself puts
			// under this kind's lookups on this machine, whatever the
			// server: a page's size decides it.
			canned := cannedServer(b, c, in)
			clat := make([]time.Duration, 0, len(lat))
			for range len(lat) {
				t0 := time.Now()
				out, err := canned.LookupEvents(ctx, in)
				if err != nil {
					b.Fatal(err)
				}
				clat = append(clat, time.Since(t0))
				if len(out.Events) == 0 {
					b.Fatalf("%s: no events from the canned page", k.name)
				}
			}
			reportLatency(b, "canned-", clat)
			b.ReportMetric(ms(statCPU(b, "/proc/self/stat")-self2)/float64(len(clat)), "canned-client-cpu-ms/op")
		})
	}
	b.Run("clients-8", func(b *testing.B) {
		const clients = 8
		cs := make([]*cloudtrail.Client, clients)
		for i := range cs {
			cs[i] = newCloudTrail(srv.endpoint, "us-east-1", "AKIABENCH00000000001", "bench-secret-key", 1)
		}
		rssCtx, stopRSS := context.WithCancel(ctx)
		maxRSS := make(chan int64, 1)
		go func() { // the largest RSS seen while the clients run
			var m int64
			for rssCtx.Err() == nil {
				m = max(m, procStatusKB(srv, "VmRSS"))
				time.Sleep(50 * time.Millisecond)
			}
			maxRSS <- m
		}()
		var next atomic.Int64
		lats := make([][]time.Duration, clients)
		total := int64(10 * b.N)
		cpu0, self0 := procCPU(b, srv), statCPU(b, "/proc/self/stat")
		b.ResetTimer()
		t0 := time.Now()
		var wg sync.WaitGroup
		for i := range clients {
			wg.Go(func() {
				for {
					r := next.Add(1) - 1
					if r >= total {
						return
					}
					k := kinds[int(r)%len(kinds)]
					t := time.Now()
					out, err := cs[i].LookupEvents(ctx, &cloudtrail.LookupEventsInput{MaxResults: aws.Int32(50), LookupAttributes: k.attrs})
					if err != nil || len(out.Events) == 0 {
						b.Errorf("%s: %v", k.name, err)
						return
					}
					lats[i] = append(lats[i], time.Since(t))
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(t0)
		b.StopTimer()
		stopRSS()
		reportLatency(b, "", slices.Concat(lats...))
		b.ReportMetric(float64(total)/elapsed.Seconds(), "req/s")
		b.ReportMetric(ms(procCPU(b, srv)-cpu0)/float64(total), "cpu-ms/op")
		// The 8 SDK clients share the machine with the server: their CPU a
		// request (signing, and decoding each page's JSON) is what the
		// server's share must leave room for.
		b.ReportMetric(ms(statCPU(b, "/proc/self/stat")-self0)/float64(total), "client-cpu-ms/op")
		b.ReportMetric(float64(<-maxRSS)/1024, "rss-MB")
		b.ReportMetric(float64(procStatusKB(srv, "VmHWM"))/1024, "peak-rss-MB")
	})
	outer := b // owns the restarted server: the framework runs restart twice (b.N 1, then the -benchtime)
	// CAIRN_BENCH_API_RESTARTS=n restarts the server n times in a pass
	// (default 1): the p50 and p99 are over every restart's rounds, and
	// each restart logs its own (RESTART lines), how long the server took
	// to answer after its start, and its slowest lookups with the time
	// since it answered: which of the first requests waited.
	// CAIRN_BENCH_API_RESTART_SECONDS=s goes on with rounds until s seconds
	// after the restarted server answered (default 0: b.N/4 rounds only,
	// which on a quiet machine end before the server's first append of its
	// self-records, 550 ms after its first call).
	restarts := 1
	if v, err := strconv.Atoi(os.Getenv("CAIRN_BENCH_API_RESTARTS")); err == nil && v > 0 {
		restarts = v
	}
	window, _ := strconv.ParseFloat(os.Getenv("CAIRN_BENCH_API_RESTART_SECONDS"), 64)
	// With a window, the server that served the passes above first runs
	// the restart pass's rounds for as long (restarts x window seconds):
	// the same mix of kinds over the same span, and so the same share of
	// rounds beside the appends of the server's own records (one each
	// ~550 ms), which a kind's pass of b.N lookups in a row, a fraction of
	// a second, mostly misses. Each kind's p50 and p99 of these rounds are
	// the steady state the restart's are compared with ("rounds").
	if window > 0 {
		b.Run("rounds", func(b *testing.B) {
			lat := make([][]time.Duration, len(kinds))
			c := newCloudTrail(srv.endpoint, "us-east-1", "AKIABENCH00000000001", "bench-secret-key", 1)
			span := window * float64(restarts)
			if b.N == 1 {
				span = window // the framework's first run, before the -benchtime one
			}
			start := time.Now()
			for time.Since(start).Seconds() < span {
				for i, k := range kinds {
					t0 := time.Now()
					out, err := c.LookupEvents(ctx, &cloudtrail.LookupEventsInput{MaxResults: aws.Int32(50), LookupAttributes: k.attrs})
					if err != nil || len(out.Events) == 0 {
						b.Fatalf("%s: %v", k.name, err)
					}
					lat[i] = append(lat[i], time.Since(t0))
				}
			}
			for i, k := range kinds {
				reportLatency(b, k.name+"-", lat[i])
			}
		})
	}
	b.Run("restart", func(b *testing.B) {
		lat := make([][]time.Duration, len(kinds))
		var ready time.Duration
		n := restarts
		if b.N == 1 {
			n = 1 // the framework's first run, before the -benchtime one
		}
		b.ResetTimer()
		for r := range n {
			b.StopTimer()
			if err := srv.term(b); err != nil {
				b.Fatalf("stop: %v\n%s", err, tail(logPath))
			}
			t0 := time.Now()
			srv = startServerProcessLevel(outer, dataDir, cfgPath, logPath, logLevel)
			up := time.Since(t0)
			ready += up
			b.StartTimer()
			c := newCloudTrail(srv.endpoint, "us-east-1", "AKIABENCH00000000001", "bench-secret-key", 1)
			type slow struct {
				round, kind int
				at, took    time.Duration
			}
			var all []slow
			pass := make([][]time.Duration, len(kinds))
			start := time.Now()
			for round := 0; round < max(1, b.N/4) || time.Since(start).Seconds() < window; round++ {
				for i, k := range kinds {
					t0 := time.Now()
					out, err := c.LookupEvents(ctx, &cloudtrail.LookupEventsInput{MaxResults: aws.Int32(50), LookupAttributes: k.attrs})
					if err != nil || len(out.Events) == 0 {
						b.Fatalf("%s after the restart: %v", k.name, err)
					}
					d := time.Since(t0)
					pass[i] = append(pass[i], d)
					all = append(all, slow{round, i, t0.Sub(start), d})
				}
			}
			slices.SortFunc(all, func(x, y slow) int { return cmp.Compare(y.took, x.took) })
			var worst []string
			for _, w := range all[:min(4, len(all))] {
				worst = append(worst, fmt.Sprintf("%s round %d at +%dms: %.1fms", kinds[w.kind].name, w.round, w.at.Milliseconds(), ms(w.took)))
			}
			b.Logf("RESTART %d/%d: answering %.2fs after its start; %d rounds in %.2fs; slowest: %s", r+1, n, up.Seconds(),
				len(pass[0]), time.Since(start).Seconds(), strings.Join(worst, ", "))
			for i, k := range kinds {
				b.Logf("RESTART %d/%d %s: first lookups %v; p50 %.2fms p99 %.2fms", r+1, n, k.name,
					pass[i][:min(5, len(pass[i]))], ms(pct(pass[i], 50)), ms(pct(pass[i], 99)))
				lat[i] = append(lat[i], pass[i]...)
			}
		}
		for i, k := range kinds {
			reportLatency(b, k.name+"-", lat[i])
		}
		b.ReportMetric(ready.Seconds()/float64(n), "ready-s")
	})
	// Stopped, not killed: a profiled server (CAIRN_TEST_CPUPROFILE)
	// writes its profile as it exits.
	if err := srv.term(b); err != nil {
		b.Errorf("stop: %v", err)
	}
}

// countingHTTPClient adds the Content-Length of the responses it
// receives to n.
type countingHTTPClient struct {
	base cloudtrail.HTTPClient
	n    *atomic.Int64
}

func (c countingHTTPClient) Do(r *http.Request) (*http.Response, error) {
	resp, err := c.base.Do(r)
	if err == nil && resp.ContentLength > 0 {
		c.n.Add(resp.ContentLength)
	}
	return resp, err
}

// wireOnly, the innermost of a client's deserialize middleware, reads the
// body of a 200 response to its last byte (adding its length to n) and
// hands the SDK's deserializer "{}" in its place: the client then pays
// for the request (building, signing, retries, HTTP) and for receiving
// every byte, not for decoding the page (docs/benchmarks.md, "wire to
// last byte"). An error response is left to the SDK.
type wireOnly struct{ n *atomic.Int64 }

func (wireOnly) ID() string { return "cairnWireOnly" }

func (m wireOnly) HandleDeserialize(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (
	middleware.DeserializeOutput, middleware.Metadata, error) {
	out, md, err := next.HandleDeserialize(ctx, in)
	resp, ok := out.RawResponse.(*smithyhttp.Response)
	if err != nil || !ok || resp.StatusCode != http.StatusOK {
		return out, md, err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return out, md, err
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return out, md, fmt.Errorf("wireOnly: read %d bytes of a body of %d", n, resp.ContentLength)
	}
	m.n.Add(n)
	resp.Body = io.NopCloser(strings.NewReader("{}"))
	return out, md, nil
}

// cannedServer returns a client like c whose endpoint is an HTTP server
// on loopback answering every request with the body of one LookupEvents
// page that c's server sent for in (read once, to its last byte): the SDK
// client's floor for that page (signing, HTTP, decoding), with the
// server's work taken out.
func cannedServer(b *testing.B, c *cloudtrail.Client, in *cloudtrail.LookupEventsInput) *cloudtrail.Client {
	var page []byte
	capture := cloudtrail.New(c.Options(), func(o *cloudtrail.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Deserialize.Add(middleware.DeserializeMiddlewareFunc("cairnCapture",
				func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (
					middleware.DeserializeOutput, middleware.Metadata, error) {
					out, md, err := next.HandleDeserialize(ctx, in)
					resp, ok := out.RawResponse.(*smithyhttp.Response)
					if err != nil || !ok || resp.StatusCode != http.StatusOK {
						return out, md, err
					}
					page, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					resp.Body = io.NopCloser(bytes.NewReader(page))
					return out, md, err
				}), middleware.After)
		})
	})
	if _, err := capture.LookupEvents(context.Background(), in); err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("Content-Length", strconv.Itoa(len(page)))
		w.Write(page)
	}))
	b.Cleanup(ts.Close)
	return cloudtrail.New(c.Options(), func(o *cloudtrail.Options) {
		o.BaseEndpoint = aws.String(ts.URL)
		o.HTTPClient = awsclient.HTTPClient(nil)
	})
}

type lookupKind struct {
	name  string
	attrs []types.LookupAttribute
}

// reportLatency reports lat's p50 and p99 as prefix+"p50-ms" and
// prefix+"p99-ms".
// pct is the p-th percentile of lat, as reportLatency takes it (lat is
// left as it was).
func pct(lat []time.Duration, p int) time.Duration {
	l := slices.Sorted(slices.Values(lat))
	return l[len(l)*p/100]
}

func reportLatency(b *testing.B, prefix string, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(ms(lat[len(lat)/2]), prefix+"p50-ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), prefix+"p99-ms")
}

// procCPU is the server process's user and system CPU time so far.
func procCPU(b *testing.B, p *serverProcess) time.Duration {
	return statCPU(b, fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
}

// statCPU is the user and system CPU time of the process whose /proc stat
// file is path (/proc/self/stat: the benchmark's own, its SDK clients).
func statCPU(b *testing.B, path string) time.Duration {
	raw, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command's name, which is in parentheses:
	// state is field 3, utime 14 and stime 15 (in clock ticks, 100 a
	// second on Linux).
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// procStatusKB is a kB field of the server process's /proc status (VmRSS,
// VmHWM), 0 when it cannot be read.
func procStatusKB(p *serverProcess, field string) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb
		}
	}
	return 0
}

// lookupAPIStore returns a data dir holding n records imported (or with
// live, sent to a server by ImportRecords).
func lookupAPIStore(b *testing.B, n, days int, live bool) string {
	b.Helper()
	dir := b.TempDir()
	if keep := os.Getenv("CAIRN_BENCH_API_KEEP"); keep != "" {
		kind := "imported"
		if live {
			kind = "live"
		}
		if lookupAPISeal() {
			kind += "-sealed"
		}
		dir = filepath.Join(keep, fmt.Sprintf("%s-%d-days%d", kind, n, days))
		if _, err := os.Stat(filepath.Join(dir, "complete")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "insights.state")); err != nil {
				// Kept before the benchmark settled its stores.
				cfg := filepath.Join(b.TempDir(), "cairn.yaml")
				if err := os.WriteFile(cfg, []byte(lookupAPIConfig), 0o600); err != nil {
					b.Fatal(err)
				}
				settleStore(b, dir, cfg)
			}
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
	if live {
		appendLive(b, dir, cfg, src)
	} else {
		var out, errs strings.Builder
		err := importCmd(context.Background(), []string{"--data-dir", dir, "--config", cfg, "--no-progress", "--output", "json", src}, &out, &errs)
		if err != nil && !strings.Contains(out.String(), `"Imported"`) {
			b.Fatalf("import: %v\n%s", err, errs.String())
		}
	}
	if lookupAPISeal() {
		var out, errs strings.Builder
		if err := compactCmd(context.Background(), []string{"--data-dir", dir}, &out, &errs); err != nil {
			b.Fatalf("compact: %v\n%s", err, errs.String())
		}
		b.Logf("SEAL %s", strings.TrimSpace(out.String()))
	}
	settleStore(b, dir, cfg)
	if os.Getenv("CAIRN_BENCH_API_KEEP") != "" {
		if err := os.WriteFile(filepath.Join(dir, "complete"), nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// lookupAPISeal: CAIRN_BENCH_API_SEAL=1 compacts the filled store with
// `cairn compact`, which seals its complete days (docs/store.md, "The
// sealed tier"), before it is served.
func lookupAPISeal() bool { return os.Getenv("CAIRN_BENCH_API_SEAL") == "1" }

// settleStore serves dir until the server's start-up catch-up over what
// was just stored is over (the Insights runner's feed position has not
// moved for 5 seconds), then stops it: its position and state are saved,
// so a later serve of dir, as a restart would, resumes from them.
// (The first serve after an import reads every record once, paced: at 1M
// records it ran for minutes beside the lookups; docs/store.md, "Start-up
// catch-up". The benchmark measures a server in its steady state and one
// just restarted.)
func settleStore(b *testing.B, dir, cfg string) {
	// The feed's last sequence number: the runner has read everything
	// stored once its position reaches it. (Stopping when the position
	// had not moved for 5 s alone left a 1M import at 88,000 under a load
	// average of 18: the paced catch-up then ran beside the measured
	// lookups, docs/benchmarks.md, issue 19 step 5.)
	st, err := duckdb.Open(filepath.Join(dir, "events.duckdb"), duckdb.Options{})
	if err != nil {
		b.Fatal(err)
	}
	end, err := st.LastSeq(context.Background())
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		b.Fatal(err)
	}
	srv := startServerProcessLevel(b, dir, cfg, filepath.Join(b.TempDir(), "settle.log"), "info")
	t0 := time.Now()
	last, still := -1.0, time.Now()
	for last < float64(end) || time.Since(still) < 5*time.Second {
		if time.Since(t0) > time.Hour {
			b.Logf("SETTLE gave up after an hour at feed position %.0f of %d", last, end)
			break
		}
		if p := feedPosition(srv.endpoint); p != last || p <= 0 {
			last, still = p, time.Now()
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err := srv.term(b); err != nil {
		b.Fatalf("stop the settling server: %v", err)
	}
	b.Logf("SETTLE the Insights runner read the feed to %.0f (the store's last: %d) in %v", last, end, time.Since(t0).Round(time.Second))
}

// appendLive sends the records of the .json.gz files under src to a server
// on dir, a file (500 records) an ImportRecords call, from 4 clients
// that back off and resend when pushed back on, and stops the server once
// every call is answered.
func appendLive(b *testing.B, dir, cfg, src string) {
	var files []string
	_ = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".json.gz") {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files) // bench/gen writes them oldest first
	srv := startServerProcessLevel(b, dir, cfg, filepath.Join(b.TempDir(), "fill.log"), "info")
	const clients = 4
	// A call the server pushes back on (its pipeline's backlog past the
	// account's share: ThrottlingException) is sent again after a backoff,
	// as `cairn import --endpoint-url` does; at 10M records the 4 clients
	// outran the writer.
	sink := cairnclient.NewImporter(cairnclient.ImporterConfig{Endpoint: srv.endpoint, Region: "us-east-1", MaxAttempts: 100,
		HTTPClient:  &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}},
		Credentials: credentials.NewStaticCredentialsProvider("AKIABENCH00000000001", "bench-secret-key", "")})
	var next, inserted, refused atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(files) {
					return
				}
				recs, err := readLogFile(files[i])
				if err != nil {
					b.Error(err)
					return
				}
				res, fails, err := sink.AppendReport(context.Background(), recs)
				if err != nil {
					b.Errorf("ImportRecords: %v", err)
					return
				}
				inserted.Add(int64(res.Inserted))
				refused.Add(int64(len(fails)))
			}
		})
	}
	wg.Wait()
	if err := srv.term(b); err != nil {
		b.Fatalf("stop the server that took the records: %v", err)
	}
	b.Logf("LIVE %d records stored through ImportRecords, %d refused (other accounts)", inserted.Load(), refused.Load())
}

// readLogFile returns the records of a trail's .json.gz log file.
func readLogFile(path string) ([]audit.Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	var file struct{ Records []json.RawMessage }
	if err := json.NewDecoder(zr).Decode(&file); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	recs := make([]audit.Record, len(file.Records))
	for i, r := range file.Records {
		recs[i] = audit.Record{Raw: r}
	}
	return recs, nil
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
