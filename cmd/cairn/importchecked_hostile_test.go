package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
)

// TestConcurrentFileImportsKeepAccountsApart (hostile-tenant suite): the
// server's file imports skip the store's own duplicate check for records
// the pipeline has checked (StageChecked), so the pipeline's check must
// hold across accounts and concurrent calls. Alice sends two overlapping
// files of her records while bob, at the same time, sends the very same
// event IDs in his own account and a file of records in alice's account,
// each call several times over. Each account ends with each of its event
// IDs stored exactly once and counted imported exactly once over all its
// calls; bob's records in alice's account are refused and stored nowhere;
// neither sees the other's events.
func TestConcurrentFileImportsKeepAccountsApart(t *testing.T) {
	const aliceAcct, bobAcct = "111111111111", "222222222222"
	file := func(account string, from, to int) []byte {
		var recs []string
		for i := from; i < to; i++ {
			recs = append(recs, importRecord(fmt.Sprintf("shared-%d", i), account, "us-east-1"))
		}
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write([]byte(`{"Records":[` + strings.Join(recs, ",") + `]}`))
		zw.Close()
		return b.Bytes()
	}
	ts := startServer(t, fmt.Sprintf(twoAccounts, 0), "")
	aliceSink := importSinkAttempts(ts, "AKIAALICE00000000001", "alice-secret-key", 4, 20)
	bobSink := importSinkAttempts(ts, "AKIABOB0000000000001", "bob-secret-key", 4, 20)
	type call struct {
		who     string
		content []byte
	}
	calls := []call{
		{"alice", file(aliceAcct, 0, 200)},
		{"alice", file(aliceAcct, 100, 300)},
		{"bob", file(bobAcct, 0, 300)},     // alice's IDs, bob's account
		{"forged", file(aliceAcct, 0, 50)}, // bob sending alice's account
	}
	var (
		mu       sync.Mutex
		imported = map[string]int64{}
		refused  int64
		wg       sync.WaitGroup
	)
	for round := range 3 {
		for i, c := range calls {
			wg.Go(func() {
				sink := aliceSink
				if c.who != "alice" {
					sink = bobSink
				}
				rep, ok, err := sink.ImportFile(context.Background(), fmt.Sprintf("r%d-f%d.json.gz", round, i), c.content)
				if err != nil || !ok {
					t.Errorf("%s's file %d: ok %v, %v", c.who, i, ok, err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				imported[c.who] += rep.Imported
				refused += rep.Rejected
			})
		}
	}
	wg.Wait()
	if imported["alice"] != 300 || imported["bob"] != 300 || imported["forged"] != 0 {
		t.Errorf("imported %v; want alice 300 and bob 300 over all their calls, none of bob's in alice's account", imported)
	}
	if refused != 3*50 {
		t.Errorf("%d records refused; want bob's 150 in alice's account", refused)
	}
	waitIngested(t, ts.endpoint)
	// seen returns the event IDs a client sees of the day, failing on one of
	// another account or one seen twice.
	seen := func(who string, c *cloudtrail.Client, account string) int {
		t.Helper()
		evs := lookupAll(t, c, &cloudtrail.LookupEventsInput{
			StartTime: aws.Time(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)), EndTime: aws.Time(time.Date(2024, 1, 3, 0, 0, 0, 0, time.UTC))})
		ids := map[string]bool{}
		for _, e := range evs {
			r := aws.ToString(e.CloudTrailEvent)
			if !strings.Contains(r, `"recipientAccountId":"`+account+`"`) {
				t.Fatalf("%s sees another account's event: %s", who, r)
			}
			id := aws.ToString(e.EventId)
			if ids[id] {
				t.Fatalf("%s sees %s twice: stored twice", who, id)
			}
			ids[id] = true
		}
		return len(ids)
	}
	if n := seen("alice", alice(ts), aliceAcct); n != 300 {
		t.Errorf("alice sees %d events; want 300", n)
	}
	if n := seen("bob", ts.client("AKIABOB0000000000001", "bob-secret-key", "us-east-1"), bobAcct); n != 300 {
		t.Errorf("bob sees %d events; want 300", n)
	}
}
