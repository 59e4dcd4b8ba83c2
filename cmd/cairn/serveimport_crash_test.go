package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	cairnclient "github.com/cairn-audit/cairn/internal/client"
)

// TestServerFileImportCrashLosesNothing kills `cairn serve` with SIGKILL,
// three times, while four clients send log files of 200 records of a day
// long ended (ImportRecords with a file's bytes, as `cairn import
// --endpoint-url` sends them), and restarts it on the same data dir. A
// file's records are not journaled: the call is answered once the stage
// holding them has committed (docs/store.md, "A server's import without
// the journal"). Every acknowledged record is then answered by
// LookupEvents exactly once, and importing every file sent again (those
// acknowledged and those a kill cut) adds exactly the records not stored,
// counted once each, after which every record sent is there once.
func TestServerFileImportCrashLosesNothing(t *testing.T) {
	ctx := context.Background()
	run := startCrashRun(t)
	endpoint := &run.endpoint
	day := time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)
	const perFile = 200
	var (
		wg    sync.WaitGroup
		stop  = make(chan struct{})
		mu    sync.Mutex
		files [][]byte            // every file sent, acknowledged or not
		acked = map[string]bool{} // the event IDs of acknowledged files
		n     atomic.Int64        // records made
		ackN  atomic.Int64        // records acknowledged
	)
	creds := credentials.NewStaticCredentialsProvider("AKIAALICE00000000001", "alice-secret-key", "")
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				var body bytes.Buffer
				zw := gzip.NewWriter(&body)
				ids := make([]string, perFile)
				fmt.Fprint(zw, `{"Records":[`)
				for i := range ids {
					k := int(n.Add(1))
					if i > 0 {
						fmt.Fprint(zw, ",")
					}
					zw.Write(crashRecord(k, day.Add(time.Duration(k%80000)*time.Second)))
					ids[i] = fmt.Sprintf("%08x-0000-4000-8000-%012x", k, k)
				}
				fmt.Fprint(zw, `]}`)
				zw.Close()
				mu.Lock()
				files = append(files, body.Bytes())
				mu.Unlock()
				sink := cairnclient.NewImporter(cairnclient.ImporterConfig{Endpoint: *endpoint.Load(), Region: "us-east-1",
					MaxAttempts: 1, HTTPClient: &http.Client{Timeout: 30 * time.Second}, Credentials: creds})
				rep, ok, err := sink.ImportFile(ctx, "f.json.gz", body.Bytes())
				if err != nil {
					time.Sleep(20 * time.Millisecond) // the server restarting
					continue                          // cut by a kill: sent again below
				}
				if !ok || rep.Imported != perFile || rep.Duplicates != 0 || rep.Rejected != 0 {
					t.Errorf("ImportFile: ok %v, %+v; want %d imported", ok, rep, perFile)
					return
				}
				mu.Lock()
				for _, id := range ids {
					acked[id] = true
				}
				mu.Unlock()
				ackN.Add(perFile)
			}
		})
	}
	stopWriters := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopWriters()
	run.killThrice(t, ackN.Load)
	stopWriters()
	if t.Failed() {
		return
	}
	got, sealed := run.storedSealed(t, day, acked)
	// Every file again: the records a kill cut are added, once.
	sink := cairnclient.NewImporter(cairnclient.ImporterConfig{Endpoint: run.proc.endpoint, Region: "us-east-1", Credentials: creds})
	var imported, dups int64
	for _, f := range files {
		rep, ok, err := sink.ImportFile(ctx, "f.json.gz", f)
		if err != nil || !ok {
			t.Fatalf("ImportFile again: ok %v, %v", ok, err)
		}
		imported += rep.Imported
		dups += rep.Duplicates
	}
	sent := int64(len(files) * perFile)
	if want := sent - int64(len(got)); imported != want || dups != int64(len(got)) {
		t.Errorf("imported again: %d new, %d duplicates; want %d new (of %d sent, %d stored), %d duplicates", imported, dups, want, sent, len(got), len(got))
	}
	if all := run.storedOnce(t, day); int64(len(all)) != sent {
		t.Errorf("after importing every file again: %d records stored; want the %d sent", len(all), sent)
	}
	t.Logf("%d records sent in %d files, %d acknowledged, %d stored after the kills (%.0f sealed), %d added again", sent, len(files), len(acked), len(got), sealed, imported)
}
