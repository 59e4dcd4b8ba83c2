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
	ctx := context.Background()
	run := startCrashRun(t)
	endpoint := &run.endpoint
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
	run.killThrice(t, acks.written.Load)
	stopWriters()
	if t.Failed() {
		return
	}
	acks.mu.Lock()
	defer acks.mu.Unlock()
	got, sealed := run.storedSealed(t, day, acks.ids)
	t.Logf("%d records acknowledged, %d answered, %.0f sealed", len(acks.ids), len(got), sealed)
}

// crashRun is a `cairn serve` process on a data dir of twoAccounts'
// config (no retention), killed and restarted by a crash test; endpoint
// is the running one's.
type crashRun struct {
	dataDir, cfgPath, logPath string
	proc                      *serverProcess
	endpoint                  atomic.Pointer[string]
}

// startCrashRun starts a crashRun; the server's log is shown if the test
// fails.
func startCrashRun(t *testing.T) *crashRun {
	work := t.TempDir()
	r := &crashRun{dataDir: filepath.Join(work, "data"), cfgPath: filepath.Join(work, "cairn.yaml"), logPath: filepath.Join(work, "serve.log")}
	writeFile(t, r.cfgPath, fmt.Sprintf(twoAccounts, 0))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("serve log:\n%s", tail(r.logPath))
		}
	})
	r.start(t)
	return r
}

func (r *crashRun) start(t *testing.T) {
	r.proc = startServerProcess(t, r.dataDir, r.cfgPath, r.logPath)
	r.endpoint.Store(&r.proc.endpoint)
}

// killThrice kills the server with SIGKILL three times, each once
// acked() has grown by 4,000 records (and up to 0.3 s more), restarting
// it on the same data dir, then waits for 2,000 more.
func (r *crashRun) killThrice(t *testing.T, acked func() int64) {
	for i := range 3 {
		for deadline, from := testwait.End(t), acked(); acked() < from+4000; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) || t.Failed() {
				t.Fatalf("run %d: %d records acknowledged by the deadline", i+1, acked()-from)
			}
		}
		time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
		r.proc.kill()
		t.Logf("run %d: SIGKILL after %d records acknowledged", i+1, acked())
		r.start(t)
	}
	for from := acked(); acked() < from+2000 && !t.Failed(); {
		time.Sleep(20 * time.Millisecond)
	}
}

// storedOnce returns the event IDs LookupEvents answers for alice's day
// once the journal is stored, failing if it answers one twice.
func (r *crashRun) storedOnce(t *testing.T, day time.Time) map[string]bool {
	waitIngested(t, r.proc.endpoint)
	client := newCloudTrail(r.proc.endpoint, "us-east-1", "AKIAALICE00000000001", "alice-secret-key", 3)
	got := map[string]bool{}
	for _, e := range lookupAll(t, client, &cloudtrail.LookupEventsInput{StartTime: aws.Time(day), EndTime: aws.Time(day.Add(24 * time.Hour))}) {
		id := aws.ToString(e.EventId)
		if got[id] {
			t.Fatalf("LookupEvents answered %s twice", id)
		}
		got[id] = true
	}
	return got
}

// storedSealed is storedOnce, failing for each ID of acked it does not
// answer, and if nothing is sealed; it returns the sealed records' count.
func (r *crashRun) storedSealed(t *testing.T, day time.Time, acked map[string]bool) (map[string]bool, float64) {
	got := r.storedOnce(t, day)
	for id := range acked {
		if !got[id] {
			t.Errorf("acknowledged record %s is not in the store after the crashes", id)
		}
	}
	sealed, err := strconv.ParseFloat(metricAt(t, r.proc.endpoint, "cairn_store_sealed_records"), 64)
	if err != nil || sealed == 0 {
		t.Errorf("cairn_store_sealed_records %v, %v: nothing sealed, the test does not cover sealing", sealed, err)
	}
	return got, sealed
}
