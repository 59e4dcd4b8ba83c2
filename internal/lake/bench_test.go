package lake

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/importer"
	"github.com/cairn-audit/cairn/internal/lake/engine"
)

// benchQueries are the Lake statements of BenchmarkLake ({T}: the store)
// and the same questions asked of DuckDB's read_json over the .json.gz
// files ({R}: one row per record, r the record).
var benchQueries = []struct{ name, lake, peer string }{
	{"groupby-eventName",
		`SELECT eventName, COUNT(*) AS n FROM {T} GROUP BY eventName ORDER BY n DESC, eventName`,
		`SELECT r.eventName, COUNT(*) AS n FROM {R} GROUP BY 1 ORDER BY n DESC, 1`},
	{"groupby-eventSource",
		`SELECT eventSource, COUNT(*) AS n FROM {T} GROUP BY eventSource ORDER BY n DESC, eventSource`,
		`SELECT r.eventSource, COUNT(*) AS n FROM {R} GROUP BY 1 ORDER BY n DESC, 1`},
	{"top10-userIdentity.arn",
		`SELECT userIdentity.arn, COUNT(*) AS n FROM {T} WHERE userIdentity.arn IS NOT NULL GROUP BY userIdentity.arn ORDER BY n DESC, 1 LIMIT 10`,
		`SELECT r.userIdentity.arn, COUNT(*) AS n FROM {R} WHERE r.userIdentity.arn IS NOT NULL GROUP BY 1 ORDER BY n DESC, 1 LIMIT 10`},
}

// benchData returns a folder of CloudTrail .json.gz files:
// CAIRN_LAKE_BENCH_DATA (e.g. written by bench/gen), or
// CAIRN_LAKE_BENCH_N events (default 100,000) written here as bench/gen
// writes them: the real records repeated with fresh eventIDs, 2,000 per
// file.
func benchData(b *testing.B) string {
	if d := os.Getenv("CAIRN_LAKE_BENCH_DATA"); d != "" {
		return d
	}
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("CAIRN_LAKE_BENCH_N")); err == nil && v > 0 {
		n = v
	}
	type tmpl struct{ before, after []byte }
	var base []tmpl
	// Records in real regions only: imports refuse the others.
	for _, rr := range audittest.RealRecordsInRealRegions(b) {
		r, err := audit.Extract(rr.Raw)
		if err != nil || r.EventID == "" {
			continue
		}
		key := []byte(`"eventID":"` + r.EventID + `"`)
		i := bytes.Index(rr.Raw, key)
		if i < 0 {
			continue
		}
		at := i + len(`"eventID":"`)
		base = append(base, tmpl{rr.Raw[:at], rr.Raw[at+len(r.EventID):]})
	}
	dir := filepath.Join(b.TempDir(), "logs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	flush := func(file int) {
		buf.WriteString("]}")
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%06d.json.gz", file)))
		if err != nil {
			b.Fatal(err)
		}
		zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
		zw.Write(buf.Bytes())
		if err := zw.Close(); err != nil {
			b.Fatal(err)
		}
		f.Close()
		buf.Reset()
	}
	for i := 0; i < n; i++ {
		if i%2000 == 0 {
			if i > 0 {
				flush(i/2000 - 1)
			}
			buf.WriteString(`{"Records":[`)
		} else {
			buf.WriteByte(',')
		}
		t := base[i%len(base)]
		buf.Write(t.before)
		fmt.Fprintf(&buf, "%08x-0000-4000-8000-%012x", i/len(base), i)
		buf.Write(t.after)
	}
	flush((n - 1) / 2000)
	return dir
}

// lakeSink stores imported records into one store, as the feed does
// (batches through insert, no duplicate check).
type lakeSink struct {
	l   *Lake
	eds string
}

func (s lakeSink) Append(ctx context.Context, recs []audit.Record) (audit.AppendResult, error) {
	rows := make([]engine.Row, len(recs))
	for i := range recs {
		rows[i] = engine.Row{Store: s.eds, Raw: recs[i].Raw}
	}
	if err := s.l.eng.Insert(ctx, rows, 0); err != nil {
		return audit.AppendResult{}, err
	}
	return audit.AppendResult{Inserted: len(recs)}, nil
}

// BenchmarkLake loads CloudTrail .json.gz files into a Lake store (the
// importer's reader, then Lake's load: the LOAD line), then times group-by
// queries through Lake (lake/...) and the same questions asked of DuckDB's
// read_json over the same files (duckdb-read_json/...), after checking
// that both answer the same. bench/lake.sh runs it.
func BenchmarkLake(b *testing.B) {
	data := benchData(b)
	dir := b.TempDir()
	l, err := openTestMem(dir, os.Getenv("CAIRN_LAKE_BENCH_MEMORY"))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	const eds, account = "00000000-0000-4000-8000-0000000000be", "123456789012"
	l.stores[eds] = &EventDataStore{ID: eds, Account: account, Region: "us-east-1", Name: "bench", Status: StatusEnabled, RetentionPeriod: 3653, MultiRegionEnabled: true}

	load1 := loadAvg()
	cpu0 := cpuTime()
	start := time.Now()
	// CAIRN_LAKE_BENCH_BATCH sets the records per Lake transaction
	// (LoadBatch, as StartImport and `cairn import --into`, when unset).
	batch, _ := strconv.Atoi(os.Getenv("CAIRN_LAKE_BENCH_BATCH"))
	if batch <= 0 {
		batch = LoadBatch
	}
	rep, err := importer.Run(ctx, []string{data}, importer.Options{Sink: lakeSink{l, eds}, BatchSize: batch})
	if err != nil || rep.Imported == 0 {
		b.Fatalf("load: %v (%+v)", err, rep)
	}
	took, cpu := time.Since(start), cpuTime()-cpu0
	if _, err := sqlDB(l).ExecContext(ctx, `CHECKPOINT`); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, DBFile))
	if err != nil {
		b.Fatal(err)
	}
	var gz int64
	filepath.WalkDir(data, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".json.gz") {
			if i, err := d.Info(); err == nil {
				gz += i.Size()
			}
		}
		return nil
	})
	fmt.Printf("LOAD events=%d seconds=%.2f events/s=%.0f cpu-seconds=%.2f events/cpu-s=%.0f lake-bytes/event=%.0f json.gz-bytes/event=%.0f load-average=%s..%s\n",
		rep.Imported, took.Seconds(), float64(rep.Imported)/took.Seconds(), cpu.Seconds(), float64(rep.Imported)/cpu.Seconds(), float64(fi.Size())/float64(rep.Imported),
		float64(gz)/float64(rep.Imported), load1, loadAvg())

	peer, err := sql.Open("duckdb", "")
	if err != nil {
		b.Fatal(err)
	}
	defer peer.Close()
	records := `(SELECT unnest(Records) AS r FROM read_json('` + strings.ReplaceAll(filepath.Join(data, "**", "*.json.gz"), "'", "''") + `'` +
		`, format = 'auto', columns = {Records: 'STRUCT(eventName VARCHAR, eventSource VARCHAR, userIdentity STRUCT(arn VARCHAR))[]'}, maximum_object_size = 268435456))`
	peerRows := func(q string) ([][2]string, error) {
		rs, err := peer.QueryContext(ctx, q)
		if err != nil {
			return nil, err
		}
		defer rs.Close()
		var out [][2]string
		for rs.Next() {
			var k *string
			var n int64
			if err := rs.Scan(&k, &n); err != nil {
				return nil, err
			}
			out = append(out, [2]string{deref(k), strconv.FormatInt(n, 10)})
		}
		return out, rs.Err()
	}
	lakeRows := func(q string) ([][2]string, error) {
		res, err := l.Query(ctx, account, q)
		if err != nil {
			return nil, err
		}
		var out [][2]string
		for _, r := range res.Rows {
			out = append(out, [2]string{deref(r[0]), deref(r[1])})
		}
		return out, nil
	}
	for _, q := range benchQueries {
		lq := strings.ReplaceAll(q.lake, "{T}", eds)
		pq := strings.ReplaceAll(q.peer, "{R}", records)
		got, err := lakeRows(lq)
		if err != nil {
			b.Fatalf("%s: %v", q.name, err)
		}
		want, err := peerRows(pq)
		if err != nil {
			b.Fatalf("%s (peer): %v", q.name, err)
		}
		if len(got) == 0 || !reflect.DeepEqual(got, want) {
			b.Fatalf("%s: Lake answers %v, DuckDB over the files %v", q.name, got, want)
		}
		b.Run("lake/"+q.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := lakeRows(lq); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("duckdb-read_json/"+q.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := peerRows(pq); err != nil {
					b.Fatal(err)
				}
			}
		})
	}

}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// cpuTime is the CPU time the process used (user + system, all threads:
// the importer's readers, Lake's load and DuckDB's own threads).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

// BenchmarkPutAuditEvents sends PutAuditEvents calls of 100 events each,
// signed with aws-sdk-go-v2's SigV4 signer, from 4 concurrent clients to a
// server on loopback; events/s counts events stored (durable and
// queryable when the call answers).
func BenchmarkPutAuditEvents(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	const key = "AKIAAAAAAAAAAAAAAAAA"
	a := e.client(key)
	_, channel := customChannel(b, a, "bench")
	endpoint := e.url + "/PutAuditEvents?channelArn=" + url.QueryEscape(channel)
	signer := v4.NewSigner()
	creds := aws.Credentials{AccessKeyID: key, SecretAccessKey: "secret" + key}
	var seq, stored, throttled atomic.Int64
	send := func() error {
		n := seq.Add(1)
		events := make([]map[string]string, 100)
		for i := range events {
			id := fmt.Sprintf("c%d-%d", n, i)
			events[i] = map[string]string{"id": id, "eventData": eventData("Op"+strconv.Itoa(i%7), "111111111111")}
		}
		body, _ := json.Marshal(map[string]any{"auditEvents": events})
		r, _ := http.NewRequest("POST", endpoint, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		sum := sha256.Sum256(body)
		if err := signer.SignHTTP(ctx, creds, r, hex.EncodeToString(sum[:]), "cloudtrail-data", "us-east-1", time.Now()); err != nil {
			return err
		}
		for backoff := 10 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
			resp, err := http.DefaultClient.Do(r)
			if err != nil {
				return err
			}
			var out struct {
				Successful, Failed []json.RawMessage
				Type               string `json:"__type"`
			}
			rb, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			err = json.Unmarshal(rb, &out)
			if resp.StatusCode == 400 && out.Type == "ThrottlingException" {
				// The journal is full: back off and send the call
				// again, as the SDKs do.
				throttled.Add(1)
				time.Sleep(backoff)
				r.Body = io.NopCloser(bytes.NewReader(body))
				continue
			}
			if err != nil || resp.StatusCode != 200 || len(out.Failed) > 0 {
				return fmt.Errorf("PutAuditEvents: %d %.300s", resp.StatusCode, rb)
			}
			stored.Add(int64(len(out.Successful)))
			return nil
		}
	}
	b.SetParallelism(2) // 2 x GOMAXPROCS clients
	start, cpu0 := time.Now(), cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := send(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	acked := time.Since(start)
	// events/s: acknowledged (durable); in-table-events/s: until the last
	// of them is in the table (the journal's writer done), which a query
	// started then would wait for.
	b.ReportMetric(float64(stored.Load())/acked.Seconds(), "events/s")
	var n int64
	if err := sqlDB(e.lake).QueryRowContext(ctx, `SELECT count(*) FROM events`).Scan(&n); err != nil || n != stored.Load() {
		b.Fatalf("%d events stored, %d acknowledged (%v)", n, stored.Load(), err)
	}
	b.ReportMetric(float64(stored.Load())/time.Since(start).Seconds(), "in-table-events/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(max(1, stored.Load())), "cpu-µs/event")
	b.ReportMetric(float64(throttled.Load()), "throttled-calls")
}
