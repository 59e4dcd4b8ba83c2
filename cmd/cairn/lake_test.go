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

	"github.com/cairn-audit/cairn/internal/audit/audittest"
)

// TestLakeImportAndQuery: through a running server, a store is created
// with the SDK, real logs are imported with cairn import --into and queried
// with cairn query; after the server stops, cairn query on the data dir
// answers the same.
func TestLakeImportAndQuery(t *testing.T) {
	real := audittest.RealDataDir(t)
	logs := t.TempDir()
	if err := os.CopyFS(filepath.Join(logs, "plaso"), os.DirFS(filepath.Join(real, "plaso"))); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(logs, "stratus"), os.DirFS(filepath.Join(real, "datadog-stratus-red-team"))); err != nil {
		t.Fatal(err)
	}
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
