package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/ingest"
	"github.com/cairn-audit/cairn/internal/store/duckdb"
	"github.com/cairn-audit/cairn/internal/testwait"
)

type discard struct{}

func (discard) Commit(context.Context, ...audit.Record) error { return nil }

// benchAuth is the Authorization header of the benchmarks' calls: the
// gateway reads the caller from it and forwards it.
const benchAuth = "AWS4-HMAC-SHA256 Credential=AKIAALICE00000000001/20250101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0"

// benchCall sends one call with benchAuth through cl and reads its
// answer; it reports false (and an error) for a failed call or a status
// of 300 or more.
func benchCall(b *testing.B, cl *http.Client, method, u string, body []byte) bool {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, _ := http.NewRequest(method, u, rd)
	req.Header.Set("Authorization", benchAuth)
	resp, err := cl.Do(req)
	if err != nil {
		b.Error(err)
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		b.Errorf("%s %s: %s", method, u, resp.Status)
		return false
	}
	return true
}

// journaledGateway is a gateway to an upstream whose pipeline journals
// each record before the response ends and stores it in DuckDB, as cairn
// serve runs it.
type journaledGateway struct {
	srv *httptest.Server
	st  *duckdb.Store
	reg *prometheus.Registry // the pipeline's metrics
}

// startJournaledGateway starts a journaledGateway in a temporary folder;
// the benchmark's cleanup stops the server, then the pipeline, then the
// store.
func startJournaledGateway(b *testing.B, upstream *url.URL) journaledGateway {
	b.Helper()
	dir := b.TempDir()
	st, err := duckdb.Open(filepath.Join(dir, "events.duckdb"), duckdb.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	pipe, err := ingest.Open(ctx, ingest.Config{Store: st, JournalDir: filepath.Join(dir, "journal"), Registerer: reg})
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	pipeDone := make(chan error, 1)
	go func() { pipeDone <- pipe.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-pipeDone })
	gw, err := New(Config{Upstreams: map[string]*url.URL{"default": upstream}, Recorder: pipe, DefaultAccount: "111111111111"})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	b.Cleanup(srv.Close)
	return journaledGateway{srv: srv, st: st, reg: reg}
}

// BenchmarkGateway measures the same S3 calls against moto_server directly
// and through the gateway: small GetObject calls (latency; p50 reported,
// the targets interleaved) and 8 MiB PutObject calls (throughput). "gateway" hands records to a
// recorder that discards them (the cost of proxying and building records);
// "stored" goes through the real ingest pipeline without a journal into a
// DuckDB store, so its latency includes waiting for the store append of
// each record; "journaled" goes through a pipeline with a journal (as
// cairn serve runs it) into another DuckDB store, so its latency includes
// the journal's write and fsync. GetObject-small-8x runs 8 clients at once
// (p50 per call; records per store commit reported for "stored", records
// per journal fsync for "journaled": group commit).
func BenchmarkGateway(b *testing.B) {
	moto := startMoto(b)
	gw, err := New(Config{Upstreams: map[string]*url.URL{"default": moto}, Recorder: discard{}, DefaultAccount: "111111111111"})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	defer srv.Close()

	st, err := duckdb.Open(filepath.Join(b.TempDir(), "events.duckdb"), duckdb.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	reg := prometheus.NewRegistry()
	pipe := ingest.New(ingest.Config{Store: st, Registerer: reg})
	ctx, cancel := context.WithCancel(context.Background())
	pipeDone := make(chan error, 1)
	go func() { pipeDone <- pipe.Run(ctx) }()
	defer func() { cancel(); <-pipeDone }()
	sgw, err := New(Config{Upstreams: map[string]*url.URL{"default": moto}, Recorder: pipe, DefaultAccount: "111111111111"})
	if err != nil {
		b.Fatal(err)
	}
	ssrv := httptest.NewServer(sgw)
	defer ssrv.Close()

	journaled := startJournaledGateway(b, moto)
	jsrv, jreg := journaled.srv, journaled.reg

	tr := &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}
	cl := &http.Client{Transport: tr}
	do := func(method, u string, body []byte) { benchCall(b, cl, method, u, body) }
	counter := func(reg *prometheus.Registry, name string) float64 {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == name {
				return mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		return 0
	}
	do("PUT", moto.String()+"/bench-bucket", nil)
	do("PUT", moto.String()+"/bench-bucket/small", []byte("hello"))
	big := bytes.Repeat([]byte("0123456789abcdef"), 8<<20/16)
	p50 := func(b *testing.B, lat []time.Duration) {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		if len(lat) > 0 {
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-us")
		}
	}
	// Small calls go round-robin to the targets (rotating the
	// order), so that the load of a shared machine weighs on each alike.
	targets := []struct{ name, base string }{{"direct", moto.String()}, {"gateway", srv.URL}, {"stored", ssrv.URL}, {"journaled", jsrv.URL}}
	b.Run("GetObject-small", func(b *testing.B) {
		lat := make([][]time.Duration, len(targets))
		for i := 0; i < b.N; i++ {
			for j := range targets {
				k := (i + j) % len(targets)
				t0 := time.Now()
				do("GET", targets[k].base+"/bench-bucket/small", nil)
				lat[k] = append(lat[k], time.Since(t0))
			}
		}
		for k, t := range targets {
			sort.Slice(lat[k], func(i, j int) bool { return lat[k][i] < lat[k][j] })
			b.ReportMetric(float64(lat[k][len(lat[k])/2].Microseconds()), t.name+"-p50-us")
		}
		if q := median(jreg, "cairn_ingest_journal_write_duration_seconds"); q > 0 {
			b.ReportMetric(q*1e6, "journal-write-p50-us")
		}
	})
	for _, target := range targets {
		b.Run("GetObject-small-8x/"+target.name, func(b *testing.B) {
			batches0, records0 := counter(reg, "cairn_ingest_batches_total"), counter(reg, "cairn_ingest_records_total")
			jrecords0, fsyncs0 := histogram(jreg, "cairn_ingest_journal_records_per_fsync")
			var (
				mu  sync.Mutex
				lat = make([]time.Duration, 0, b.N)
				wg  sync.WaitGroup
			)
			next := make(chan struct{}, b.N)
			for i := 0; i < b.N; i++ {
				next <- struct{}{}
			}
			close(next)
			for w := 0; w < 8; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range next {
						t0 := time.Now()
						do("GET", target.base+"/bench-bucket/small", nil)
						d := time.Since(t0)
						mu.Lock()
						lat = append(lat, d)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			p50(b, lat)
			if nb := counter(reg, "cairn_ingest_batches_total") - batches0; target.name == "stored" && nb > 0 {
				b.ReportMetric((counter(reg, "cairn_ingest_records_total")-records0)/nb, "records/commit")
			}
			if jrecords, fsyncs := histogram(jreg, "cairn_ingest_journal_records_per_fsync"); target.name == "journaled" && fsyncs > fsyncs0 {
				b.ReportMetric((jrecords-jrecords0)/float64(fsyncs-fsyncs0), "records/fsync")
			}
		})
		b.Run("PutObject-8MiB/"+target.name, func(b *testing.B) {
			b.SetBytes(int64(len(big)))
			for i := 0; i < b.N; i++ {
				do("PUT", target.base+fmt.Sprintf("/bench-bucket/big%d", i%4), big)
			}
		})
	}
}

// histogram reads the sum and count of a histogram of reg.
func histogram(reg *prometheus.Registry, name string) (sum float64, count uint64) {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == name {
			h := mf.GetMetric()[0].GetHistogram()
			return h.GetSampleSum(), h.GetSampleCount()
		}
	}
	return 0, 0
}

// median returns the upper bound of the histogram bucket of reg holding
// the median sample.
func median(reg *prometheus.Registry, name string) float64 {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == name {
			h := mf.GetMetric()[0].GetHistogram()
			for _, bk := range h.GetBucket() {
				if bk.GetCumulativeCount()*2 >= h.GetSampleCount() {
					return bk.GetUpperBound()
				}
			}
		}
	}
	return 0
}

// BenchmarkGatewayRecordRate measures how many calls a second the gateway
// records durably when its upstream costs next to nothing (an in-process
// server answering every call with 5 bytes; moto_server bounds
// BenchmarkGateway at a few hundred calls a second): 16 clients send b.N
// small GetObject calls through a gateway whose pipeline journals each
// record (write + fsync, group commit) before the response ends and stores
// it in DuckDB behind the calls, as cairn serve runs it. recorded-events/s
// counts calls answered (each one's record journaled); stored-events/s
// runs until the store holds every record; cpu-us/event is the CPU of the
// whole test process (clients, upstream, gateway, pipeline, store).
func BenchmarkGatewayRecordRate(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "binary/octet-stream")
		_, _ = w.Write([]byte("hello"))
	}))
	defer up.Close()
	upURL, err := url.Parse(up.URL)
	if err != nil {
		b.Fatal(err)
	}
	journaled := startJournaledGateway(b, upURL)
	srv, st := journaled.srv, journaled.st
	ctx := context.Background()
	cl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32, DisableCompression: true}}
	seq0, err := st.LastSeq(ctx)
	if err != nil {
		b.Fatal(err)
	}
	const clients = 16
	var next atomic.Int64
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU()
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if !benchCall(b, cl, "GET", srv.URL+"/bench-bucket/small", nil) {
					return
				}
			}
		})
	}
	wg.Wait()
	recordedIn := time.Since(start)
	for {
		seq, err := st.LastSeq(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if seq-seq0 >= int64(b.N) {
			break
		}
		if time.Now().After(testwait.End(b)) {
			b.Fatalf("%d of %d records stored before the binary's deadline (-timeout less %v)", seq-seq0, b.N, testwait.Margin)
		}
		time.Sleep(10 * time.Millisecond)
	}
	storedIn, cpu := time.Since(start), processCPU()-cpu0
	b.StopTimer()
	b.ReportMetric(float64(b.N)/recordedIn.Seconds(), "recorded-events/s")
	b.ReportMetric(float64(b.N)/storedIn.Seconds(), "stored-events/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/event")
}

// processCPU is the CPU time the process used (user + system, all
// threads).
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
