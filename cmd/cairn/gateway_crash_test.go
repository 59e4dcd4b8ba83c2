package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/cairn-audit/cairn/internal/mototest"
	"github.com/cairn-audit/cairn/internal/testaddr"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// TestGatewayCrashLosesNoAcknowledgedCall runs `cairn serve` with a gateway
// in front of moto_server as a child process, makes CreateBucket calls
// through it from 4 clients and kills the server with SIGKILL at a random
// moment, twice; after a restart on the same data dir (which replays the
// ingest journal), every call whose response the client got is in
// LookupEvents.
func TestGatewayCrashLosesNoAcknowledgedCall(t *testing.T) {
	moto := mototest.Start(t)
	dir := t.TempDir()
	gwAddr := testaddr.Free(t)
	cfgPath := filepath.Join(dir, "cairn.yaml")
	cfg := fmt.Sprintf(twoAccounts, 90) + fmt.Sprintf("gateway:\n  listen: %s\n  upstreams:\n    default: %s\n", gwAddr, moto)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir, logPath := filepath.Join(dir, "data"), filepath.Join(dir, "serve.log")
	// One attempt: a call cut by the kill is not acknowledged; no retry
	// after the restart.
	cli := newS3("http://"+gwAddr, "AKIAALICE00000000001", "alice-secret-key", 1)
	var (
		mu    sync.Mutex
		acked = map[string]bool{}
	)
	for round := range 2 {
		p := startServerProcess(t, dataDir, cfgPath, logPath)
		var (
			n    atomic.Int64
			stop atomic.Bool
			wg   sync.WaitGroup
		)
		for c := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; !stop.Load(); i++ {
					name := fmt.Sprintf("crash-r%d-c%d-%d", round, c, i)
					if _, err := cli.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
						// Before the gateway listens, or cut by the kill.
						time.Sleep(20 * time.Millisecond)
						continue
					}
					mu.Lock()
					acked[name] = true
					mu.Unlock()
					n.Add(1)
				}
			}()
		}
		killAt := int64(30 + rand.IntN(60))
		for deadline := testwait.End(t); n.Load() < killAt; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: %d calls before the test's deadline\n%s", round, n.Load(), tail(logPath))
			}
		}
		p.kill()
		stop.Store(true)
		wg.Wait()
		t.Logf("round %d: SIGKILL after %d acknowledged calls", round, n.Load())
	}
	p := startServerProcess(t, dataDir, cfgPath, logPath)
	defer p.kill()
	ct := newCloudTrail(p.endpoint, "us-east-1", "AKIAALICE00000000001", "alice-secret-key", 1)
	evs := lookupAll(t, ct, &cloudtrail.LookupEventsInput{LookupAttributes: []types.LookupAttribute{{
		AttributeKey: types.LookupAttributeKeyEventName, AttributeValue: aws.String("CreateBucket")}}})
	stored := map[string]bool{}
	for _, e := range evs {
		var rec struct {
			RequestParameters struct {
				BucketName string `json:"bucketName"`
			} `json:"requestParameters"`
		}
		if err := json.Unmarshal([]byte(aws.ToString(e.CloudTrailEvent)), &rec); err != nil {
			t.Fatal(err)
		}
		stored[rec.RequestParameters.BucketName] = true
	}
	var missing []string
	for name := range acked {
		if !stored[name] {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d acknowledged calls not in LookupEvents after the crashes, e.g. %v\n%s", len(missing), len(acked), missing[:min(5, len(missing))], tail(logPath))
	}
	t.Logf("%d acknowledged calls, all in LookupEvents (%d CreateBucket events)", len(acked), len(evs))
	log, _ := os.ReadFile(logPath)
	for l := range strings.Lines(string(log)) {
		if strings.Contains(l, "replayed the journal") {
			t.Logf("serve: %s", strings.TrimSpace(l))
		}
	}
}
