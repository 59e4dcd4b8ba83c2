package cloudtrailmodel

import "testing"

func TestModelHasEveryOperation(t *testing.T) {
	ct := CloudTrail()
	if n := len(ct.Operations); n != 60 {
		t.Errorf("CloudTrail has %d operations; want the model's 60", n)
	}
	if ct.TargetPrefix != "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101" || ct.Protocol != "json" {
		t.Errorf("CloudTrail = %s/%s", ct.TargetPrefix, ct.Protocol)
	}
	if _, ok := CloudTrailData().Operations["PutAuditEvents"]; !ok {
		t.Error("CloudTrail Data lacks PutAuditEvents")
	}
}

func TestLookupEventsFacts(t *testing.T) {
	op, ok := Operation("LookupEvents")
	if !ok || !op.ReadOnly {
		t.Fatalf("LookupEvents = %+v, %v; want a read-only operation", op, ok)
	}
	mr, ok := op.Member("MaxResults")
	if !ok || mr.Min == nil || *mr.Min != 1 || mr.Max == nil || *mr.Max != 50 {
		t.Errorf("MaxResults = %+v; want min 1, max 50", mr)
	}
	want := map[string]bool{"InvalidLookupAttributesException": true, "InvalidTimeRangeException": true,
		"InvalidMaxResultsException": true, "InvalidNextTokenException": true, "InvalidEventCategoryException": true}
	for _, e := range op.Errors {
		delete(want, e)
	}
	if len(want) > 0 {
		t.Errorf("LookupEvents errors lack %v", want)
	}
}

func TestReadOnlyRule(t *testing.T) {
	for op, want := range map[string]bool{"LookupEvents": true, "DescribeTrails": true, "GetTrail": true,
		"ListTags": true, "CreateTrail": false, "StopLogging": false, "PutEventSelectors": false, "StartQuery": false} {
		if got, _ := Operation(op); got.ReadOnly != want {
			t.Errorf("%s ReadOnly = %v; want %v", op, got.ReadOnly, want)
		}
	}
}
