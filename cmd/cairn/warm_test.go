package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/cairn-audit/cairn/internal/testwait"
)

// TestRestartedServerWarmsItsLookupsUnrecorded: a server started on a data
// dir whose last server answered lookups runs them through LookupEvents
// before it answers (and logs how many), and records none of them: after
// two restarts, each warming, each account's LookupEvents events are the
// calls its own user made, none of them made with the other account's key
// (a lookup saved for one tenant is warmed as that tenant, in its account).
func TestRestartedServerWarmsItsLookupsUnrecorded(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := fmt.Sprintf(twoAccounts, 90)
	ts := startServer(t, cfg, dir)
	c := alice(ts)
	for _, in := range []*cloudtrail.LookupEventsInput{{}, {LookupAttributes: attr(types.LookupAttributeKeyEventName, "GetObject")}} {
		if _, err := c.LookupEvents(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	bob := ts.client("AKIABOB0000000000001", "bob-secret-key", "us-east-1")
	if _, err := bob.LookupEvents(ctx, &cloudtrail.LookupEventsInput{LookupAttributes: attr(types.LookupAttributeKeyUsername, "alice")}); err != nil {
		t.Fatal(err)
	}
	ts.stop() // graceful: the two calls' records are stored, the lookups saved

	// Restarted with its log kept, then stopped again: whatever it queued
	// is stored by the stop's drain.
	var logs lockedBuffer
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	go func() {
		done <- serve(sctx, ln, serveFlags{dataDir: dir, config: filepath.Join(dir, "cairn.yaml")}, log, os.Stderr)
	}()
	for deadline := testwait.End(t); ; {
		if resp, err := http.Get("http://" + ln.Addr().String() + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("the restarted server did not answer before the test's deadline:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve = %v", err)
	}
	if !strings.Contains(logs.String(), `msg="api: the saved lookups run through LookupEvents before serving" lookups=3`) {
		t.Errorf("the restarted server did not log running the 3 saved lookups:\n%s", logs.String())
	}

	ts = startServer(t, cfg, dir) // warms them again
	evs := lookupAll(t, alice(ts), &cloudtrail.LookupEventsInput{LookupAttributes: attr(types.LookupAttributeKeyEventName, "LookupEvents")})
	if len(evs) != 2 {
		t.Errorf("after two warmed restarts %d LookupEvents events; want the 2 calls made", len(evs))
	}
	for _, e := range evs {
		if aws.ToString(e.AccessKeyId) != "AKIAALICE00000000001" {
			t.Errorf("alice's account holds a LookupEvents event of key %q", aws.ToString(e.AccessKeyId))
		}
	}
	bob = ts.client("AKIABOB0000000000001", "bob-secret-key", "us-east-1")
	evs = lookupAll(t, bob, &cloudtrail.LookupEventsInput{LookupAttributes: attr(types.LookupAttributeKeyEventName, "LookupEvents")})
	if len(evs) != 1 || aws.ToString(evs[0].AccessKeyId) != "AKIABOB0000000000001" {
		t.Errorf("after two warmed restarts bob's account holds %d LookupEvents events; want bob's 1 call", len(evs))
	}
}
