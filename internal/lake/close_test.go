package lake

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/lake/engine"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// TestStopEndsItsWork stops a Lake while a query runs, an import imports
// and Run loops, in both ways a Lake stops: Close, and the end of Run's
// context (the server's shutdown, before Close). Each stops and waits for
// all of the Lake's work: when Run or Close returns, the query and the
// import have ended and no goroutine of the Lake is left; what reaches it
// afterwards is refused as ServiceUnavailable, not run on a closed engine.
func TestStopEndsItsWork(t *testing.T) {
	for _, how := range []string{"Close", "Run's context"} {
		t.Run(how, func(t *testing.T) { testStopEndsItsWork(t, how == "Close") })
	}
}

func testStopEndsItsWork(t *testing.T, byClose bool) {
	before := runtime.NumGoroutine()
	root := t.TempDir()
	l, err := openTest(t.TempDir(), Options{ImportRoots: []string{root}, Feed: audittest.NewMemStore(), IngestInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			l.Close()
		}
	})
	ctx := context.Background()
	p := audit.Principal{AccountID: "111111111111", Region: "us-east-1"}
	s, err := l.CreateEventDataStore(ctx, p, CreateStoreRequest{Name: ptr("alpha")})
	if err != nil {
		t.Fatal(err)
	}
	var rows []engine.Row
	for i := range 40 {
		rows = append(rows, engine.Row{Store: s.ID, Raw: fmt.Appendf(nil, `{"eventID":"e-%d","eventName":"ListBuckets"}`, i)})
	}
	if err := l.eng.Insert(ctx, rows, 0); err != nil {
		t.Fatal(err)
	}

	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	runDone := make(chan error, 1)
	go func() { runDone <- l.Run(runCtx) }()
	// A query that runs until it is cancelled: 40^8 rows (40^6 took DuckDB
	// only 1.8-3.6 s, which a slow log file write below could outlast).
	endless := `SELECT count(*) AS n FROM ` + s.ID + ` a`
	for _, a := range []string{"b", "c", "d", "e", "f", "g", "h"} {
		endless += ` CROSS JOIN ` + s.ID + ` ` + a
	}
	qid, err := l.StartQuery(ctx, p, endless)
	if err != nil {
		t.Fatal(err)
	}
	for {
		q, err := l.DescribeQuery(ctx, p, QueryRef{ID: qid})
		if err != nil {
			t.Fatal(err)
		}
		if q.State == QueryRunning {
			break
		}
		if q.State != QueryQueued {
			t.Fatalf("query %s: %s", q.State, q.ErrorMessage)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// An import of a file large enough to be running at the stop.
	writeLogFile(t, root+"/big.json", 20000)
	im, err := l.StartImport(ctx, p, ImportRequest{Destinations: []string{s.ID}, Source: root + "/big.json"})
	if err != nil {
		t.Fatal(err)
	}

	if byClose {
		closeDone := make(chan error, 1)
		go func() { closeDone <- l.Close() }()
		select {
		case err := <-closeDone:
			closed = true
			if err != nil {
				t.Errorf("Close: %v", err)
			}
		case <-testwait.Context(t).Done():
			t.Fatal("Close did not return while a query, an import and Run were running")
		}
	} else {
		stopRun()
	}
	select {
	case err := <-runDone:
		if err != nil {
			t.Errorf("Run: %v; want nil", err)
		}
	case <-testwait.Context(t).Done():
		t.Fatal("Run still runs after the stop")
	}
	// Run (or Close) returned: the query and the import have ended.
	if q, err := l.DescribeQuery(ctx, p, QueryRef{ID: qid}); err != nil || q.State != QueryFailed {
		t.Errorf("query after the stop: %+v, %v; want FAILED (stopped)", q, err)
	}
	if got, err := l.Import(ctx, p, im.ID); err != nil || got.Status == ImportInitializing || got.Status == ImportInProgress {
		t.Errorf("import after the stop: %+v, %v; want ended", got, err)
	}

	// After the stop: refused, not run on the engine.
	want := "ServiceUnavailable"
	_, err = l.StartQuery(ctx, p, `SELECT eventID FROM `+s.ID)
	checkCode(t, "StartQuery after the stop", err, want)
	_, err = l.Query(ctx, p.AccountID, `SELECT eventID FROM `+s.ID)
	checkCode(t, "Query after the stop", err, want)
	_, err = l.Sync(ctx, audittest.NewMemStore())
	checkCode(t, "Sync after the stop", err, want)
	_, err = l.StartImport(ctx, p, ImportRequest{Destinations: []string{s.ID}, Source: root + "/big.json"})
	checkCode(t, "StartImport after the stop", err, want)
	checkCode(t, "Run after the stop", l.Run(ctx), want)
	if err := l.Close(); err != nil {
		t.Errorf("Close after the stop: %v", err)
	}
	closed = true
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	// No goroutine of the Lake is left (those of the runtime and the
	// test framework may come and go: wait for the count to settle).
	var n int
	for range 200 {
		if n = runtime.NumGoroutine(); n <= before {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	t.Errorf("%d goroutines after the stop, %d before Open:\n%s", n, before, buf)
}

func ptr[T any](v T) *T { return &v }

func checkCode(t *testing.T, what string, err error, want string) {
	t.Helper()
	var ae *audit.Error
	if !errors.As(err, &ae) || string(ae.Code) != want {
		t.Errorf("%s: %v; want %s", what, err, want)
	}
}

// writeLogFile writes a CloudTrail log file of n records of account
// 111111111111.
func writeLogFile(t *testing.T, path string, n int) {
	t.Helper()
	var b strings.Builder
	b.WriteString(`{"Records":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","accountId":"111111111111","userName":"u"},"eventTime":"2026-01-02T03:04:05Z","eventSource":"s3.amazonaws.com","eventName":"ListBuckets","awsRegion":"us-east-1","sourceIPAddress":"192.0.2.1","requestID":"R%d","eventID":"%08d-0000-4000-8000-000000000000","readOnly":true,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"111111111111","eventCategory":"Management"}`, i, i)
	}
	b.WriteString(`]}`)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}
