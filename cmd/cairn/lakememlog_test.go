package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"

	"github.com/cairn-audit/cairn/internal/testwait"
)

// TestLakeLoadMemory: an offline cairn import --into runs DuckDB under
// loadMemoryLimit, below the config's lake.memory_limit (1GB), and
// --memlog writes the load's memory by part (issue 15).
func TestLakeLoadMemory(t *testing.T) {
	logs := aliceLogs(t, "plaso")
	cfg := fmt.Sprintf(twoAccounts, 0) + "lake:\n  memory_limit: 1GB\n"
	ts := startServer(t, cfg, "")
	ctx := context.Background()
	st, err := alice(ts).CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("mem"), RetentionPeriod: aws.Int32(3653), StartIngestion: aws.Bool(false)})
	if err != nil {
		t.Fatal(err)
	}
	memlog := filepath.Join(t.TempDir(), "mem.log")
	var out, errb bytes.Buffer
	// Through the server the load is the server's: --memlog says it
	// writes nothing, and does not (whatever the import's outcome: a key
	// the server does not know is refused).
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIANOTKNOWN00000001")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "not-a-secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	run(ctx, []string{"import", "--endpoint-url", ts.endpoint, "--memlog", memlog, "--into", aws.ToString(st.EventDataStoreArn), logs}, &out, &errb)
	if !strings.Contains(errb.String(), "--memlog: the load runs in the server") {
		t.Errorf("import --into --endpoint-url --memlog: stderr %q; want it to say --memlog writes nothing", errb.String())
	}
	if _, err := os.Stat(memlog); !os.IsNotExist(err) {
		t.Errorf("--memlog through a server wrote %s (%v)", memlog, err)
	}
	ts.stop()
	out.Reset()
	errb.Reset()
	if code := run(ctx, []string{"import", "--data-dir", ts.dataDir, "--config", ts.config, "--no-progress", "--memlog", memlog, "--into", aws.ToString(st.EventDataStoreArn), logs}, &out, &errb); code != 0 {
		t.Fatalf("import --into: %d\n%s\n%s", code, out.String(), errb.String())
	}
	b, err := os.ReadFile(memlog)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 2 {
		t.Fatalf("memlog:\n%s\nwant a header and a line at least", b)
	}
	head, last := strings.Fields(lines[0]), strings.Fields(lines[len(lines)-1])
	if len(last) < len(head)-1 {
		t.Fatalf("memlog line %q; want the header's fields %q", lines[len(lines)-1], lines[0])
	}
	row := map[string]string{}
	for i, h := range head[:len(head)-1] { // duckdb_tags: a list
		row[h] = last[i]
	}
	if got, want := row["duckdb_limit"], "427.2MiB"; got != want { // 448MB
		t.Errorf("DuckDB's memory_limit during the load = %s; want %s (loadMemoryLimit, below the config's 1GB)", got, want)
	}
	if row["seen_keys"] == "0" || row["rss_mb"] == "0" {
		t.Errorf("memlog's last line %q: no keys in the seen set, or no RSS", lines[len(lines)-1])
	}
}

// serveMemLogRow runs cairn serve --memlog with twoAccounts and extra in
// its config file until it answers /healthz, stops it, and returns the
// memlog's last line (written at stop) by the header's names, and the line.
func serveMemLogRow(t *testing.T, extra string) (map[string]string, string) {
	t.Helper()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "cairn.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(twoAccounts, 0)+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	memlog := filepath.Join(dir, "serve.memlog")
	prevLimit := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(prevLimit)
	debug.SetMemoryLimit(math.MaxInt64)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, ln, serveFlags{dataDir: filepath.Join(dir, "dd"), config: cfgPath, memLog: memlog}, slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard)
	}()
	testwait.UntilNil(t, "serve answering /healthz", func() error {
		resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	// The server runs under Go's soft memory limit (limitGoMemoryAt), put
	// back when it stops.
	if got := debug.SetMemoryLimit(-1); got != serveGoMemory {
		t.Errorf("Go's memory limit while serving = %d; want %d", got, int64(serveGoMemory))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve = %v", err)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("Go's memory limit after serve = %d; want it back at %d", got, int64(math.MaxInt64))
	}
	if _, err := os.Stat(memlog + ".000.heap"); err != nil {
		t.Errorf("no heap profile beside the memlog: %v", err)
	}
	b, err := os.ReadFile(memlog)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 2 {
		t.Fatalf("memlog:\n%s\nwant a header and a line at least (the one written at stop)", b)
	}
	head, last := strings.Fields(lines[0]), strings.Fields(lines[len(lines)-1])
	if len(last) < len(head) {
		t.Fatalf("memlog line %q; want the header's fields %q", lines[len(lines)-1], lines[0])
	}
	row := map[string]string{}
	for i, h := range head[:len(head)-2] { // lake_tags, eh_tags: lists
		row[h] = last[i]
	}
	return row, lines[len(lines)-1]
}

// TestServeMemLog: cairn serve --memlog writes the server's memory by
// part, Lake's DuckDB limit as configured among them (issue 15: where a
// StartImport's memory goes).
func TestServeMemLog(t *testing.T) {
	row, line := serveMemLogRow(t, "lake:\n  memory_limit: 300MB\n")
	if got, want := row["lake_limit"], "286.1MiB"; got != want { // 300MB
		t.Errorf("Lake's DuckDB memory_limit in the memlog = %s; want %s (the config's)", got, want)
	}
	for _, c := range []string{"eh_keyfilter_mb", "eh_bucketindex_mb", "eh_blockcache_mb", "eh_tail_mb"} {
		if _, err := strconv.ParseFloat(row[c], 64); err != nil {
			t.Errorf("memlog's %s = %q; want MiB", c, row[c])
		}
	}
	if row["rss_mb"] == "0" || row["go_mapped_mb"] == "0" {
		t.Errorf("memlog's last line %q: no RSS or no Go memory", line)
	}
	if runtime.GOOS == "linux" && runtime.GOARCH == "amd64" && row["je_mapped_mb"] == "-" {
		t.Errorf("memlog's last line %q: no jemalloc counters on linux/amd64", line)
	}
}

// TestServeLakeMemoryDefault: a server whose file sets no lake.memory_limit
// runs Lake's DuckDB at config.DefaultLakeMemoryLimit, 448MB (issue 15: a
// 10M StartImport's server within 954 MiB; docs/lake.md, "A server's
// memory_limit of 448MB"), and the operator's lake.memory_limit wins over
// it, above it as below.
func TestServeLakeMemoryDefault(t *testing.T) {
	for _, c := range []struct{ extra, want string }{
		{"", "427.2MiB"}, // 448MB
		{"lake:\n  memory_limit: 512MB\n", "488.2MiB"},
		{"lake:\n  memory_limit: 384MB\n", "366.2MiB"},
	} {
		row, _ := serveMemLogRow(t, c.extra)
		if got := row["lake_limit"]; got != c.want {
			t.Errorf("config %q: Lake's DuckDB memory_limit in the memlog = %s; want %s", c.extra, got, c.want)
		}
	}
}
