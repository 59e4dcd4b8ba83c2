package trail

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/bucket/local"
	"github.com/cairn-audit/cairn/internal/trail/chain"
)

// benchLog is a log file of n records shaped like CloudTrail's.
func benchLog(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"Records":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"eventVersion":"1.11","userIdentity":{"type":"IAMUser","principalId":"AIDAEXAMPLE%06d","arn":"arn:aws:iam::111122223333:user/alice","accountId":"111122223333","accessKeyId":"AKIAEXAMPLE%09d","userName":"alice"},"eventTime":"2026-11-20T10:%02d:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.%d","userAgent":"aws-cli/2.15.0","requestParameters":{"bucketName":"data","key":"k/%d"},"responseElements":null,"requestID":"R%08d","eventID":"e%035d","readOnly":true,"eventType":"AwsApiCall","managementEvent":false,"recipientAccountId":"111122223333"}`, i, i, i%60, i%250, i, i, i)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// BenchmarkDigestSign measures one hourly digest: 12 log files (one per
// 5-minute delivery) listed, serialized, signed with RSA-2048 and gzipped.
func BenchmarkDigestSign(b *testing.B) {
	kr, err := OpenKeyring(b.TempDir(), 0)
	if err != nil {
		b.Fatal(err)
	}
	k, _ := kr.Current("us-east-1", time.Now())
	f := DigestFile{AWSAccountID: "111122223333", DigestStartTime: "2026-11-20T10:00:00Z", DigestEndTime: "2026-11-20T11:00:00Z",
		DigestS3Bucket: "audit-logs", DigestS3Object: "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/11/20/x.json.gz"}
	for i := range 12 {
		f.LogFiles = append(f.LogFiles, DigestLogFile{S3Bucket: "audit-logs", S3Object: fmt.Sprintf("AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/20/111122223333_CloudTrail_us-east-1_20261120T10%02dZ_AbCdEfGhIjKlMnOp.json.gz", i*5),
			HashValue: chain.HashLog([]byte{byte(i)}), HashAlgorithm: HashAlgorithm, NewestEventTime: "2026-11-20T10:00:00Z", OldestEventTime: "2026-11-20T10:00:00Z"})
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SignDigest(&f, k); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "digests/s")
}

// BenchmarkHashLog measures the SHA-256 of a delivered log file (1,000
// records, about 600 KB uncompressed): the digest cost per log file.
func BenchmarkHashLog(b *testing.B) {
	raw := benchLog(1000)
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		chain.HashLog(raw)
	}
}

// WriteBenchChain writes hours of digests, each over perHour log files of
// records records, for trail main of account 111122223333 into the local
// bucket "audit-logs" in dir/bucket, with the keys in dir. It returns the
// start time. The benchmark script uses it through TestWriteBenchData.
func writeBenchChain(tb testing.TB, dir string, hours, perHour, records int) time.Time {
	bkt, err := local.New("audit-logs", filepath.Join(dir, "bucket"))
	if err != nil {
		tb.Fatal(err)
	}
	t0 := time.Now().UTC().Add(-time.Duration(hours+1) * time.Hour).Truncate(time.Hour)
	clk := &clock{t0}
	tr := Trail{Name: "main", Account: "111122223333", HomeRegion: "us-east-1", S3BucketName: "audit-logs",
		LogFileValidationEnabled: true, Logging: true, StartLoggingTime: t0}
	ft := &fakeTrails{trails: []Trail{tr}}
	keys, err := OpenKeyring(dir, 0)
	if err != nil {
		tb.Fatal(err)
	}
	w, err := NewDigestWriter(DigestConfig{Dir: dir, Trails: ft, Bucket: func(string) (Bucket, bool) { return bkt, true }, Keys: keys,
		Interval: time.Hour, Now: clk.now})
	if err != nil {
		tb.Fatal(err)
	}
	raw := benchLog(records)
	zipped := gzipBench(tb, raw)
	ctx := context.Background()
	for h := range hours {
		for i := range perHour {
			clk.t = t0.Add(time.Duration(h)*time.Hour + time.Duration(i+1)*(time.Hour/time.Duration(perHour+1)))
			key := fmt.Sprintf("AWSLogs/111122223333/CloudTrail/us-east-1/%s/111122223333_CloudTrail_us-east-1_%s_b%02dx%02dCdEfGhIjKlM.json.gz",
				clk.t.Format("2006/01/02"), clk.t.Format("20060102T1504Z"), h%100, i)
			if err := bkt.Put(ctx, key, zipped, "application/json", nil); err != nil {
				tb.Fatal(err)
			}
			w.LogDelivered(ctx, tr, tr.Account, "us-east-1", key, chain.HashLog(raw), clk.t, clk.t)
		}
		clk.t = t0.Add(time.Duration(h+1) * time.Hour)
		w.WriteDue(ctx)
	}
	return t0
}

func gzipBench(tb testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzipWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkValidate measures `validate-logs` over a local bucket: 6 hourly
// digests over 12 log files each of 1,000 records; reported per log file
// and in uncompressed MB/s.
func BenchmarkValidate(b *testing.B) {
	dir := b.TempDir()
	t0 := writeBenchChain(b, dir, 6, 12, 1000)
	kr, _ := OpenKeyring(dir, 0)
	bkt, _ := local.New("audit-logs", filepath.Join(dir, "bucket"))
	raw := int64(len(benchLog(1000)))
	b.SetBytes(raw * 72)
	for b.Loop() {
		v := &chain.Validation{TrailARN: "arn:aws:cloudtrail:us-east-1:111122223333:trail/main", Start: t0, End: t0.Add(7 * time.Hour),
			Bucket: "audit-logs", Objects: BucketObjects(func(string) (Bucket, bool) { return bkt, true }),
			PublicKeys: func(_ context.Context, s, e time.Time) ([]chain.PublicKey, error) {
				var out []chain.PublicKey
				for _, k := range kr.Public("us-east-1", s, e) {
					out = append(out, chain.PublicKey{Fingerprint: k.Fingerprint, DER: k.DER})
				}
				return out, nil
			}, Stdout: io.Discard, Stderr: io.Discard}
		ok, err := v.Run(context.Background())
		if err != nil || !ok {
			b.Fatalf("validation: %v %v", ok, err)
		}
	}
	b.ReportMetric(float64(72*b.N)/b.Elapsed().Seconds(), "logs/s")
}

// TestWriteBenchData writes the data of bench/digest.sh into
// $CAIRN_BENCH_DIGEST_DIR (skipped without it) and prints the start time.
func TestWriteBenchData(t *testing.T) {
	dir := os.Getenv("CAIRN_BENCH_DIGEST_DIR")
	if dir == "" {
		t.Skip("CAIRN_BENCH_DIGEST_DIR is not set (bench/digest.sh sets it)")
	}
	t0 := writeBenchChain(t, dir, 6, 12, 1000)
	if err := os.WriteFile(filepath.Join(dir, "start-time"), []byte(t0.Format(time.RFC3339)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func gzipWriter(w io.Writer) *gzip.Writer { return gzip.NewWriter(w) }
