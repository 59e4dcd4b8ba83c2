package main

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/cairn-audit/cairn/internal/testwait"
)

// TestOwnDescribeTrailsRecordedAsAWS: cairn records its own DescribeTrails
// as AWS records it: sent without members, requestParameters
// {"trailNameList": [], "includeShadowTrails": true}; naming trails, only
// trailNameList (testdata/real/invictus-ir-aws_dataset: …T1230Z_KV9LZlfXqBel7nqf
// and …T1210Z_6CICdbJQM3beT7n3).
func TestOwnDescribeTrailsRecordedAsAWS(t *testing.T) {
	ts := startServer(t, fmt.Sprintf(twoAccounts, 90), "")
	c := ts.client("AKIAALICE00000000001", "alice-secret-key", "us-east-1")
	ctx := context.Background()
	if _, err := c.DescribeTrails(ctx, &cloudtrail.DescribeTrailsInput{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DescribeTrails(ctx, &cloudtrail.DescribeTrailsInput{TrailNameList: []string{"trail1"}}); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{`{"trailNameList":[],"includeShadowTrails":true}`: false, `{"trailNameList":["trail1"]}`: false}
	for deadline := testwait.End(t); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		out, err := c.LookupEvents(ctx, &cloudtrail.LookupEventsInput{LookupAttributes: []types.LookupAttribute{
			{AttributeKey: types.LookupAttributeKeyEventName, AttributeValue: aws.String("DescribeTrails")}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Events) < 2 {
			continue
		}
		for _, e := range out.Events {
			var rec struct {
				RequestParameters json.RawMessage `json:"requestParameters"`
			}
			if err := json.Unmarshal([]byte(aws.ToString(e.CloudTrailEvent)), &rec); err != nil {
				t.Fatal(err)
			}
			if _, ok := want[string(rec.RequestParameters)]; !ok {
				t.Errorf("DescribeTrails requestParameters %s; want one of %v", rec.RequestParameters, want)
			}
			want[string(rec.RequestParameters)] = true
		}
		for k, seen := range want {
			if !seen {
				t.Errorf("no DescribeTrails recorded with %s", k)
			}
		}
		return
	}
	t.Fatal("DescribeTrails calls not recorded before the test's deadline")
}
