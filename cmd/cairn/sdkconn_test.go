package main

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
)

// TestGoClientWithoutRetriesNeverFails is issue 11 item 13: aws-sdk-go-v2
// with retries off failed about 1 LookupEvents in 100 with "use of closed
// network connection" while reading a 200 response. The cause is on the
// client (package awsclient says how); cairn's own clients use
// awsclient.HTTPClient, and so does this one: 5,000 calls, none may fail.
// The responses hold 5 events each (every call is recorded), larger than
// the client's first 4 KiB read, which the race needs.
func TestGoClientWithoutRetriesNeverFails(t *testing.T) {
	ts := startServer(t, fmt.Sprintf(twoAccounts, 90), "")
	c := newCloudTrail(ts.endpoint, "us-east-1", "AKIAALICE00000000001", "alice-secret-key", 1)
	ctx := context.Background()
	calls := 5000
	if testing.Short() {
		calls = 500
	}
	// Records to look up, so that responses are several KiB.
	for range 5 {
		if _, err := c.LookupEvents(ctx, &cloudtrail.LookupEventsInput{}); err != nil {
			t.Fatal(err)
		}
	}
	waitForEvents(t, c, 5)
	var fails int
	for i := range calls {
		out, err := c.LookupEvents(ctx, &cloudtrail.LookupEventsInput{MaxResults: aws.Int32(5)})
		if err != nil {
			if fails++; fails <= 3 {
				t.Errorf("call %d: %v", i+1, err)
			}
			continue
		}
		if len(out.Events) != 5 {
			t.Fatalf("call %d: %d events; want 5", i+1, len(out.Events))
		}
	}
	if fails > 0 {
		t.Errorf("%d of %d calls failed; want 0", fails, calls)
	}
}
