package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// TestServerSealCrashLosesNothing kills `cairn serve` with SIGKILL, three
// times, while ImportRecords calls of 200 records of a day long ended go
// in (its store seals them as it appends them: docs/store.md, "Sealing
// during a server's import"), and restarts it on the same data dir: every
// acknowledged record is then answered by LookupEvents exactly once (a
// kill between a stage's segment writes and its COMMIT leaves bytes the
// next start cuts, and the journal's replay stores the records again),
// and records were sealed.
func TestServerSealCrashLosesNothing(t *testing.T) {
	work := t.TempDir()
	dataDir := filepath.Join(work, "data")
	cfgPath, logPath := filepath.Join(work, "cairn.yaml"), filepath.Join(work, "serve.log")
	writeFile(t, cfgPath, fmt.Sprintf(twoAccounts, 0))
	defer func() {
		if t.Failed() {
			t.Logf("serve log:\n%s", tail(logPath))
		}
	}()
	ctx := context.Background()
	var endpoint atomic.Pointer[string]
	proc := startServerProcess(t, dataDir, cfgPath, logPath)
	endpoint.Store(&proc.endpoint)
	day := time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)
	var (
		wg   sync.WaitGroup
		stop = make(chan struct{})
		acks = &ackedImports{ids: map[string]bool{}}
	)
	wg.Go(func() {
		n := 0
		for {
			select {
			case <-stop:
				return
			default:
			}
			recs := make([]audit.Record, 200)
			ids := make([]string, len(recs))
			for i := range recs {
				n++
				recs[i].Raw = crashRecord(n, day.Add(time.Duration(n%80000)*time.Second))
				ids[i] = fmt.Sprintf("%08x-0000-4000-8000-%012x", n, n)
			}
			if !acks.send(ctx, t, *endpoint.Load(), recs, ids) {
				return
			}
		}
	})
	stopWriters := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopWriters()
	for i := range 3 {
		for deadline, from := testwait.End(t), acks.written.Load(); acks.written.Load() < from+4000; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("run %d: %d records acknowledged by the deadline", i+1, acks.written.Load()-from)
			}
		}
		time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
		proc.kill()
		t.Logf("run %d: SIGKILL after %d records acknowledged", i+1, acks.written.Load())
		proc = startServerProcess(t, dataDir, cfgPath, logPath)
		endpoint.Store(&proc.endpoint)
	}
	for from := acks.written.Load(); acks.written.Load() < from+2000; {
		time.Sleep(20 * time.Millisecond)
	}
	stopWriters()
	if t.Failed() {
		return
	}
	waitIngested(t, proc.endpoint)
	client := newCloudTrail(proc.endpoint, "us-east-1", "AKIAALICE00000000001", "alice-secret-key", 3)
	got := map[string]bool{}
	for _, e := range lookupAll(t, client, &cloudtrail.LookupEventsInput{StartTime: aws.Time(day), EndTime: aws.Time(day.Add(24 * time.Hour))}) {
		id := aws.ToString(e.EventId)
		if got[id] {
			t.Fatalf("LookupEvents answered %s twice", id)
		}
		got[id] = true
	}
	acks.mu.Lock()
	defer acks.mu.Unlock()
	for id := range acks.ids {
		if !got[id] {
			t.Errorf("acknowledged record %s is not in the store after the crashes", id)
		}
	}
	sealed, err := strconv.ParseFloat(metricAt(t, proc.endpoint, "cairn_store_sealed_records"), 64)
	if err != nil || sealed == 0 {
		t.Errorf("cairn_store_sealed_records %v, %v: nothing sealed, the test does not cover sealing", sealed, err)
	}
	t.Logf("%d records acknowledged, %d answered, %.0f sealed", len(acks.ids), len(got), sealed)
}
