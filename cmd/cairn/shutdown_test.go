package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"

	"github.com/cairn-audit/cairn/internal/testwait"
)

// lockedBuffer is a bytes.Buffer safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestGracefulStopDuringImportLogsNoError stops the server (as SIGINT or
// SIGTERM does) while `cairn import --endpoint-url` sends records, with a
// trail delivering and a Lake event data store ingesting: the stop is no
// failure, so nothing is logged at ERROR; the import reports what was
// stored and exits non-zero.
func TestGracefulStopDuringImportLogsNoError(t *testing.T) {
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	os.MkdirAll(logs, 0o755)
	for f := range 20 {
		var recs []string
		for i := range 1000 {
			recs = append(recs, importRecord(fmt.Sprintf("f%d-r%d", f, i), "111111111111", "us-east-1"))
		}
		writeFile(t, filepath.Join(logs, fmt.Sprintf("f%02d.json", f)), `{"Records":[`+strings.Join(recs, ",")+`]}`)
	}
	dataDir := t.TempDir()
	cfgPath := filepath.Join(dataDir, "cairn.yaml")
	writeFile(t, cfgPath, fmt.Sprintf(twoAccounts, 0)+"delivery:\n  interval: 1s\n")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var serverLog lockedBuffer
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	defer func() { stop(); <-done }()
	go func() {
		done <- serve(ctx, ln, serveFlags{dataDir: dataDir, config: cfgPath}, slog.New(slog.NewTextHandler(&serverLog, nil)), &serverLog)
	}()
	endpoint := "http://" + ln.Addr().String()
	ct := newCloudTrail(endpoint, "us-east-1", "AKIAALICE00000000001", "alice-secret-key", 5)
	bg := context.Background()
	if _, err := ct.CreateTrail(bg, &cloudtrail.CreateTrailInput{Name: aws.String("evidence-trail"), S3BucketName: aws.String(defaultBucket)}); err != nil {
		t.Fatal(err)
	}
	if _, err := ct.StartLogging(bg, &cloudtrail.StartLoggingInput{Name: aws.String("evidence-trail")}); err != nil {
		t.Fatal(err)
	}
	if _, err := ct.CreateEventDataStore(bg, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("all"), RetentionPeriod: aws.Int32(3653)}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAALICE00000000001")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "alice-secret-key")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "none"))
	var impOut, impErr bytes.Buffer
	impDone := make(chan int, 1)
	go func() {
		impDone <- run(bg, []string{"import", "--endpoint-url", endpoint, "--region", "us-east-1", "--no-progress", "--output", "json", logs},
			&impOut, &impErr)
	}()
	// Stop once the import has stored records (or has finished).
	for deadline := testwait.End(t); ; time.Sleep(20 * time.Millisecond) {
		out, err := ct.LookupEvents(bg, &cloudtrail.LookupEventsInput{StartTime: aws.Time(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)),
			EndTime: aws.Time(time.Date(2024, 1, 3, 0, 0, 0, 0, time.UTC)), MaxResults: aws.Int32(1)})
		if err == nil && len(out.Events) > 0 || time.Now().After(deadline) {
			break
		}
	}
	stop()
	err = <-done
	done <- err // for the deferred wait
	if err != nil {
		t.Errorf("serve = %v", err)
	}
	code := <-impDone
	if strings.Contains(serverLog.String(), "level=ERROR") {
		t.Errorf("the graceful stop logged errors:\n%s", serverLog.String())
	}
	rep := decodeImportReport(t, impOut.Bytes())
	if code == 0 && rep.Imported != 20000 || code != 0 && code != exitStopped {
		t.Errorf("import: exit %d, %d imported\n%s", code, rep.Imported, impErr.String())
	}
	t.Logf("import exit %d, %d imported before the stop", code, rep.Imported)
}
