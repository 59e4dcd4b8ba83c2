package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/cairn-audit/cairn/internal/pgtest"
)

// TestServeOnPostgres drives serve with store.postgres through
// aws-sdk-go-v2: its own calls are recorded into PostgreSQL and found by
// LookupEvents under their attributes, page by page; another account sees
// none of them; and a second server with a new, empty data dir on the same
// database finds them all (Event History is in PostgreSQL, not on the
// node's disk). cairn migrate then finds the schema up to date.
func TestServeOnPostgres(t *testing.T) {
	dsn := pgtest.Database(t)
	cfg := fmt.Sprintf(twoAccounts, 90) + fmt.Sprintf("store:\n  postgres: %q\n", dsn)
	ts := startServer(t, cfg, "")
	c := alice(ts)
	ctx := context.Background()
	const calls = 12
	for range calls {
		if _, err := c.LookupEvents(ctx, &cloudtrail.LookupEventsInput{MaxResults: aws.Int32(3)}); err != nil {
			t.Fatalf("LookupEvents: %v", err)
		}
	}
	if _, err := c.CreateTrail(ctx, &cloudtrail.CreateTrailInput{Name: aws.String("trail1"), S3BucketName: aws.String("nope")}); errCode(err) != "S3BucketDoesNotExistException" {
		t.Fatalf("CreateTrail = %v; want S3BucketDoesNotExistException", err)
	}
	waitForEvents(t, c, calls+1)

	check := func(t *testing.T, c *cloudtrail.Client) {
		t.Helper()
		byName := lookupAll(t, c, &cloudtrail.LookupEventsInput{MaxResults: aws.Int32(5),
			LookupAttributes: attr(types.LookupAttributeKeyEventName, "LookupEvents")})
		if len(byName) < calls {
			t.Errorf("EventName=LookupEvents: %d events; want at least %d", len(byName), calls)
		}
		for i := 1; i < len(byName); i++ {
			if byName[i].EventTime.After(*byName[i-1].EventTime) {
				t.Errorf("page order: event %d is newer than event %d", i, i-1)
			}
		}
		seen := map[string]bool{}
		for _, e := range byName {
			if id := aws.ToString(e.EventId); seen[id] {
				t.Errorf("event %s returned twice across pages", id)
			} else {
				seen[id] = true
			}
		}
		for _, a := range [][]types.LookupAttribute{
			attr(types.LookupAttributeKeyEventName, "CreateTrail"),
			attr(types.LookupAttributeKeyReadOnly, "false"),
			attr(types.LookupAttributeKeyUsername, "alice"),
			attr(types.LookupAttributeKeyAccessKeyId, "AKIAALICE00000000001"),
			attr(types.LookupAttributeKeyEventSource, "cloudtrail.amazonaws.com"),
		} {
			evs := lookupAll(t, c, &cloudtrail.LookupEventsInput{LookupAttributes: a})
			if len(evs) == 0 {
				t.Errorf("%s=%s: no event", a[0].AttributeKey, aws.ToString(a[0].AttributeValue))
			}
			for _, e := range evs {
				if !strings.Contains(aws.ToString(e.CloudTrailEvent), `"recipientAccountId":"111111111111"`) {
					t.Errorf("%s=%s: an event of another account: %s", a[0].AttributeKey, aws.ToString(a[0].AttributeValue), aws.ToString(e.CloudTrailEvent))
				}
			}
		}
	}
	check(t, c)
	bob := ts.client("AKIABOB0000000000001", "bob-secret-key", "us-east-1")
	if evs := lookupAll(t, bob, &cloudtrail.LookupEventsInput{LookupAttributes: attr(types.LookupAttributeKeyUsername, "alice")}); len(evs) != 0 {
		t.Errorf("bob sees %d of alice's events", len(evs))
	}
	ts.stop()

	// Another node: a new data dir, the same database.
	ts2 := startServer(t, cfg, "")
	check(t, alice(ts2))
	ts2.stop()

	var out, errOut bytes.Buffer
	cfgPath := filepath.Join(t.TempDir(), "cairn.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := run(ctx, []string{"migrate", "--config", cfgPath}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "up to date") {
		t.Errorf("cairn migrate = %d, %q, %q; want the schema up to date", code, out.String(), errOut.String())
	}
	if code := run(ctx, []string{"migrate", "--config", ts.config + ".none"}, &out, &errOut); code == 0 {
		t.Errorf("cairn migrate with a missing file exited 0")
	}
}
