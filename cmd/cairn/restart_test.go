package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/cairn-audit/cairn/internal/testwait"
)

// TestCrashesKeepWriteAheadLogsShort kills `cairn serve` with SIGKILL
// several times while PutAuditEvents calls (one small transaction each)
// are acknowledged, and checks after each kill that the write-ahead logs a
// restart must replay stay short (replay costs milliseconds per
// transaction, so their size is the restart time), then that every
// acknowledged event is in the event data store after the restarts.
// Before checkpoints by transaction count, Lake's log grew by every
// acknowledged call across the crashes (5.2 KB each: 1,300 calls made a
// 6.8 MB log and a 5 s restart).
func TestCrashesKeepWriteAheadLogsShort(t *testing.T) {
	const (
		crashes       = 4
		callsPerRun   = 80
		commits       = 20
		maxLakeWAL    = 512 << 10 // 20 transactions are ~100 KB
		maxHistoryWAL = 1 << 20
	)
	work := t.TempDir()
	dataDir, cfgPath, logPath := filepath.Join(work, "data"), filepath.Join(work, "cairn.yaml"), filepath.Join(work, "serve.log")
	writeFile(t, cfgPath, fmt.Sprintf(twoAccounts, 0)+fmt.Sprintf("lake:\n  checkpoint_commits: %d\n", commits))
	defer func() {
		if t.Failed() {
			t.Logf("serve log:\n%s", tail(logPath))
		}
	}()
	ctx := context.Background()
	proc := startServerProcess(t, dataDir, cfgPath, logPath)
	var endpoint atomic.Pointer[string]
	endpoint.Store(&proc.endpoint)
	client := func() *cloudtrail.Client {
		return cloudtrail.New(cloudtrail.Options{Region: "us-east-1", BaseEndpoint: endpoint.Load(), RetryMaxAttempts: 3,
			Credentials: credentials.NewStaticCredentialsProvider("AKIAALICE00000000001", "alice-secret-key", "")})
	}
	st, err := client().CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("custom"),
		AdvancedEventSelectors: []types.AdvancedEventSelector{{Name: aws.String("custom"),
			FieldSelectors: []types.AdvancedFieldSelector{{Field: aws.String("eventCategory"), Equals: []string{"ActivityAuditLog"}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := client().CreateChannel(ctx, &cloudtrail.CreateChannelInput{Name: aws.String("app"), Source: aws.String("Custom"),
		Destinations: []types.Destination{{Type: types.DestinationTypeEventDataStore, Location: st.EventDataStoreArn}}})
	if err != nil {
		t.Fatal(err)
	}

	// Writers: one event a call; a call answered 200 with the event in
	// Successful is acknowledged.
	var (
		wg    sync.WaitGroup
		stop  = make(chan struct{})
		mu    sync.Mutex
		acked = map[string]bool{}
		n     atomic.Int64
	)
	hc := &http.Client{Timeout: 10 * time.Second}
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				uid := fmt.Sprintf("w%d-%d", w, i)
				if putAuditEvent(hc, *endpoint.Load(), aws.ToString(ch.ChannelArn), uid) {
					mu.Lock()
					acked[uid] = true
					mu.Unlock()
					n.Add(1)
				} else {
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	stopWriters := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopWriters()

	walSize := func(name string) int64 {
		fi, err := os.Stat(filepath.Join(dataDir, name+".wal"))
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	for i := range crashes {
		for from, deadline := n.Load(), testwait.End(t); n.Load() < from+callsPerRun; {
			if time.Now().After(deadline) {
				t.Fatalf("run %d: %d calls acknowledged before the test's deadline; want %d", i+1, n.Load()-from, callsPerRun)
			}
			time.Sleep(20 * time.Millisecond)
		}
		proc.kill()
		lw, hw := walSize("lake.duckdb"), walSize(storeFile)
		t.Logf("SIGKILL %d after %d calls acknowledged: lake.duckdb.wal %d bytes, %s.wal %d bytes", i+1, n.Load(), lw, storeFile, hw)
		if lw > maxLakeWAL {
			t.Errorf("SIGKILL %d: lake.duckdb.wal is %d bytes; want at most %d (checkpoints every %d transactions)", i+1, lw, maxLakeWAL, commits)
		}
		if hw > maxHistoryWAL {
			t.Errorf("SIGKILL %d: %s.wal is %d bytes; want at most %d", i+1, storeFile, hw, maxHistoryWAL)
		}
		proc = startServerProcess(t, dataDir, cfgPath, logPath)
		endpoint.Store(&proc.endpoint)
	}
	stopWriters()

	// Every acknowledged event is in the store.
	id := aws.ToString(st.EventDataStoreArn)
	id = id[strings.LastIndex(id, "/")+1:]
	c := client()
	q, err := c.StartQuery(ctx, &cloudtrail.StartQueryInput{QueryStatement: aws.String(`SELECT eventData.uid AS uid FROM ` + id)})
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for next := (*string)(nil); ; {
		r, err := c.GetQueryResults(ctx, &cloudtrail.GetQueryResultsInput{QueryId: q.QueryId, NextToken: next})
		if err != nil {
			t.Fatal(err)
		}
		if r.QueryStatus == types.QueryStatusQueued || r.QueryStatus == types.QueryStatusRunning {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if r.QueryStatus != types.QueryStatusFinished {
			t.Fatalf("query: %s %s", r.QueryStatus, aws.ToString(r.ErrorMessage))
		}
		for _, row := range r.QueryResultRows {
			for _, cell := range row {
				stored[cell["uid"]] = true
			}
		}
		if next = r.NextToken; next == nil {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	lost := 0
	for uid := range acked {
		if !stored[uid] {
			lost++
		}
	}
	if lost > 0 || len(acked) == 0 {
		t.Errorf("%d of %d acknowledged events are not in the store after %d crashes", lost, len(acked), crashes)
	}
}

// putAuditEvent sends one event through PutAuditEvents (SigV4 for
// cloudtrail-data) and reports whether it was acknowledged.
func putAuditEvent(hc *http.Client, endpoint, channel, uid string) bool {
	data := fmt.Sprintf(`{"version":"1.0","userIdentity":{"type":"CustomUser","principalId":"app"},"eventSource":"app.example.com","eventName":"Save","eventTime":"2026-01-02T03:04:05Z","UID":%q,"recipientAccountId":"111111111111"}`, uid)
	body, _ := json.Marshal(map[string]any{"auditEvents": []map[string]string{{"id": "e1", "eventData": data}}})
	r, err := http.NewRequest("POST", endpoint+"/PutAuditEvents?channelArn="+url.QueryEscape(channel), bytes.NewReader(body))
	if err != nil {
		return false
	}
	r.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: "AKIAALICE00000000001", SecretAccessKey: "alice-secret-key"},
		r, hex.EncodeToString(sum[:]), "cloudtrail-data", "us-east-1", time.Now()); err != nil {
		return false
	}
	resp, err := hc.Do(r)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var out struct {
		Successful []struct{ ID string } `json:"successful"`
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode == 200 && json.Unmarshal(b, &out) == nil && len(out.Successful) == 1
}
