package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/mototest"
)

// TestLakeImportAndQuery: through a running server, a store is created
// with the SDK, real logs are imported with cairn import --into and queried
// with cairn query; after the server stops, cairn query on the data dir
// answers the same.
func TestLakeImportAndQuery(t *testing.T) {
	// Real logs, owned by the importing account (cairn imports only the
	// caller's own records).
	// Not datadog-stratus-red-team: its publisher made its regions up,
	// and imports refuse those records (regions_test.go).
	logs := aliceLogs(t, "plaso", "opensearch-catalog")
	cfg := fmt.Sprintf(twoAccounts, 0) + "lake:\n  import_roots: [" + logs + "]\n  ingest_interval: 50ms\n"
	ts := startServer(t, cfg, "")
	ctx := context.Background()
	a := alice(ts)
	st, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("cli"), RetentionPeriod: aws.Int32(3653), StartIngestion: aws.Bool(false)})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(st.EventDataStoreArn)
	id = id[strings.LastIndex(id, "/")+1:]
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAALICE00000000001")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "alice-secret-key")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"import", "--endpoint-url", ts.endpoint, "--into", id, logs}, &out, &errb); code != 0 {
		t.Fatalf("import --into: %d\n%s\n%s", code, out.String(), errb.String())
	}
	stmt := `SELECT eventSource, count(*) AS n FROM ` + id + ` GROUP BY eventSource ORDER BY n DESC, eventSource`
	out.Reset()
	if code := run(ctx, []string{"query", "--endpoint-url", ts.endpoint, "--output", "csv", stmt}, &out, &errb); code != 0 {
		t.Fatalf("query: %d %s", code, errb.String())
	}
	remote := out.String()
	rows, err := csv.NewReader(strings.NewReader(remote)).ReadAll()
	if err != nil || len(rows) < 3 || rows[0][0] != "eventSource" {
		t.Fatalf("csv: %v %q", err, remote)
	}
	// Forbidden SQL through the CLI fails with the model's error.
	errb.Reset()
	if code := run(ctx, []string{"query", "--endpoint-url", ts.endpoint, "SELECT * FROM read_text('/etc/passwd')"}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "InvalidQueryStatementException") {
		t.Errorf("read_text: %d %s", code, errb.String())
	}
	ts.stop()
	out.Reset()
	if code := run(ctx, []string{"query", "--data-dir", ts.dataDir, "--config", ts.config, "--output", "csv", stmt}, &out, &errb); code != 0 {
		t.Fatalf("local query: %d %s", code, errb.String())
	}
	if out.String() != remote {
		t.Errorf("local answer differs:\n%s\nvs\n%s", out.String(), remote)
	}
	out.Reset()
	if code := run(ctx, []string{"query", "--data-dir", ts.dataDir, "--config", ts.config, "--output", "table", `SELECT count(*) AS n FROM ` + id}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "n\n") {
		t.Errorf("table: %d %q %s", code, out.String(), errb.String())
	}
}

// TestLakeImportFromS3: cairn import --into with an s3:// URI of a bucket
// in the config (moto_server), through a server and then on the data dir,
// holds what the import of the same files from a local path holds.
func TestLakeImportFromS3(t *testing.T) {
	// Real logs, owned by the importing account (cairn imports only the
	// caller's own records).
	real := audittest.Rehome(t, audittest.RealDataDir(t), "111111111111")
	moto := mototest.Start(t)
	ctx := context.Background()
	s3c := newS3(moto, "x", "y", 0) // moto is not under test: the SDK's retries
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("audit-logs")}); err != nil {
		t.Fatal(err)
	}
	logs := t.TempDir()
	for _, src := range []string{"plaso", "opensearch-catalog", "nexthink-cloudtrail-s3-to-kinesis"} {
		if err := os.CopyFS(filepath.Join(logs, src), os.DirFS(filepath.Join(real, src))); err != nil {
			t.Fatal(err)
		}
		ents, err := os.ReadDir(filepath.Join(real, src))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if !strings.HasSuffix(e.Name(), ".json") && !strings.HasSuffix(e.Name(), ".json.gz") {
				continue
			}
			b, err := os.ReadFile(filepath.Join(real, src, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			key := "AWSLogs/111111111111/CloudTrail/us-east-1/2024/07/30/111111111111_CloudTrail_us-east-1_20240730T0000Z_" + src + "-" + e.Name()
			if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("audit-logs"), Key: aws.String(key), Body: bytes.NewReader(b)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	cfg := fmt.Sprintf(twoAccounts, 0) + "lake:\n  import_roots: [" + logs + "]\n" + fmt.Sprintf(`buckets:
  - name: audit-logs
    s3: {endpoint: %q, region: us-east-1, access_key_id: x, secret_access_key: y, path_style: true}
`, moto)
	ts := startServer(t, cfg, "")
	a := alice(ts)
	newStore := func(name string) string {
		st, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String(name), RetentionPeriod: aws.Int32(3653), StartIngestion: aws.Bool(false)})
		if err != nil {
			t.Fatal(err)
		}
		id := aws.ToString(st.EventDataStoreArn)
		return id[strings.LastIndex(id, "/")+1:]
	}
	fromS3, fromPath := newStore("from-s3"), newStore("from-path")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAALICE00000000001")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "alice-secret-key")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	var out, errb bytes.Buffer
	for _, c := range [][]string{{fromS3, "s3://audit-logs/AWSLogs/"}, {fromPath, logs}} {
		if code := run(ctx, []string{"import", "--endpoint-url", ts.endpoint, "--into", c[0], c[1]}, &out, &errb); code != 0 {
			t.Fatalf("import --into %s: %d\n%s\n%s", c[1], code, out.String(), errb.String())
		}
	}
	query := func(id string, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		stmt := `SELECT eventSource, eventName, count(*) AS n FROM ` + id + ` GROUP BY eventSource, eventName ORDER BY eventSource, eventName`
		if code := run(ctx, append(append([]string{"query"}, args...), "--output", "csv", stmt), &out, &errb); code != 0 {
			t.Fatalf("query: %d %s", code, errb.String())
		}
		return out.String()
	}
	viaS3 := query(fromS3, "--endpoint-url", ts.endpoint)
	if viaPath := query(fromPath, "--endpoint-url", ts.endpoint); viaS3 != viaPath || strings.Count(viaS3, "\n") < 10 {
		t.Errorf("s3 import holds\n%s\nthe path import\n%s", viaS3, viaPath)
	}
	errb.Reset()
	if code := run(ctx, []string{"import", "--endpoint-url", ts.endpoint, "--into", fromS3, "s3://other-bucket/AWSLogs/"}, &out, &errb); code == 0 ||
		!strings.Contains(errb.String(), "InvalidImportSourceException") {
		t.Errorf("import from a bucket not in the config: %d %s", code, errb.String())
	}
	ts.stop()
	// Without a server, on the data dir: the same bucket, nothing new.
	out.Reset()
	if code := run(ctx, []string{"import", "--data-dir", ts.dataDir, "--config", ts.config, "--no-progress", "--output", "json", "--into", fromS3, "s3://audit-logs/AWSLogs/"}, &out, &errb); code != 0 ||
		!strings.Contains(out.String(), `"Imported": 0`) {
		t.Errorf("local import from s3: %d %s %s", code, out.String(), errb.String())
	}
	if got := query(fromS3, "--data-dir", ts.dataDir, "--config", ts.config); got != viaS3 {
		t.Errorf("after the local import again:\n%s\nwant\n%s", got, viaS3)
	}
	errb.Reset()
	if code := run(ctx, []string{"import", "--data-dir", ts.dataDir, "--config", ts.config, "--into", fromS3, "s3://other-bucket/x"}, &out, &errb); code == 0 ||
		!strings.Contains(errb.String(), "not one of the buckets") {
		t.Errorf("local import from a bucket not in the config: %d %s", code, errb.String())
	}
}

// aliceLogs is a temporary folder holding the real records' folders srcs
// (shared/testdata/real), their records rehomed to alice's account
// 111111111111 (imports take only the caller's own records).
func aliceLogs(t *testing.T, srcs ...string) string {
	t.Helper()
	real := audittest.Rehome(t, audittest.RealDataDir(t), "111111111111")
	logs := t.TempDir()
	for _, src := range srcs {
		if err := os.CopyFS(filepath.Join(logs, src), os.DirFS(filepath.Join(real, src))); err != nil {
			t.Fatal(err)
		}
	}
	return logs
}
