package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/cairn-audit/cairn/internal/audit"
)

// An ImportRecords call is recorded once, with the counts it answered and
// the number of records as its parameters, whether its records were new
// or duplicates: its own record is journaled with its records (one
// journal write a call).
func TestImportRecordsCallIsRecordedOnceWithItsCounts(t *testing.T) {
	ts := startServer(t, fmt.Sprintf(twoAccounts, 90), "")
	ctx := context.Background()
	sink := importSink(ts, "AKIAALICE00000000001", "alice-secret-key", 1)
	now := time.Now()
	recs := make([]audit.Record, 5)
	for i := range recs {
		recs[i] = accountRecord("111111111111", "self", i, now)
	}
	recs = append(recs, accountRecord("222222222222", "self", 99, now)) // another account's: failed
	for range 2 {                                                       // new, then duplicates
		if _, _, err := sink.AppendReport(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	waitIngested(t, ts.endpoint)
	ct := ts.client("AKIAALICE00000000001", "alice-secret-key", "us-east-1")
	out, err := ct.LookupEvents(ctx, &cloudtrail.LookupEventsInput{LookupAttributes: []types.LookupAttribute{
		{AttributeKey: types.LookupAttributeKeyEventName, AttributeValue: aws.String("ImportRecords")}}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range out.Events {
		var ev struct {
			RequestParameters json.RawMessage `json:"requestParameters"`
			ResponseElements  json.RawMessage `json:"responseElements"`
			ErrorCode         string          `json:"errorCode"`
		}
		if err := json.Unmarshal([]byte(aws.ToString(e.CloudTrailEvent)), &ev); err != nil {
			t.Fatal(err)
		}
		got = append(got, string(ev.RequestParameters)+" "+string(ev.ResponseElements)+" "+ev.ErrorCode)
	}
	// Both calls may fall in one second: in any order.
	slices.Sort(got)
	want := []string{
		`{"records":6} {"duplicates":0,"failed":1,"inserted":5} `,
		`{"records":6} {"duplicates":5,"failed":1,"inserted":0} `,
	}
	if len(got) != len(want) {
		t.Fatalf("ImportRecords recorded %d times: %q; want %q", len(got), got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("record %d = %s; want %s", i, got[i], want[i])
		}
	}
}
