package apiserver

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit/audittest"
)

// TestTrailsOfAnotherAccount drives the trail, tag and page token
// operations as a hostile tenant: account B names account A's trail by
// name and by ARN (GetTrail, GetTrailStatus, StartLogging, DeleteTrail,
// selectors, AddTags, RemoveTags, ListTags), gives ARNs with invalid
// regions, an oversized TagsList, and replays A's NextTokens (ListTrails,
// LookupEvents) as its own and on another operation. Every call answers
// an AWS-shaped 400 that tells B nothing of A's trail, and A's trail is
// as A left it.
func TestTrailsOfAnotherAccount(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	st := audittest.NewMemStore()
	s := New(Config{Auth: fakeAuth{}, History: st, Recorder: syncRecorder{st},
		TokenKey: []byte("0123456789abcdef0123456789abcdef"), Now: func() time.Time { return now },
		Handlers: trailHandlerMap(trailService(t, 1))})
	const a, b = "111111111111", "222222222222"
	arn := "arn:aws:cloudtrail:us-east-1:" + a + ":trail/main"
	for _, body := range []string{`{"Name":"main","S3BucketName":"logs","TagsList":[{"Key":"team","Value":"sec"}]}`, `{"Name":"second","S3BucketName":"logs"}`} {
		if code, resp := do(t, s, a, "CreateTrail", body); code != 200 {
			t.Fatalf("CreateTrail = %d %v", code, resp)
		}
	}
	// B's own trail of the same name: names resolve in the caller's account.
	if code, resp := do(t, s, b, "CreateTrail", `{"Name":"other","S3BucketName":"logs"}`); code != 200 {
		t.Fatalf("B's CreateTrail = %d %v", code, resp)
	}
	_, resp := do(t, s, a, "ListTrails", `{}`)
	listToken, _ := resp["NextToken"].(string)
	_, resp = do(t, s, a, "LookupEvents", `{"MaxResults":1}`)
	lookupToken, _ := resp["NextToken"].(string)
	if listToken == "" || lookupToken == "" {
		t.Fatalf("no NextToken to replay: %q %q", listToken, lookupToken)
	}
	tok := func(s string) string { b, _ := json.Marshal(s); return string(b) }

	for _, c := range []struct{ op, body, code string }{
		{"GetTrail", `{"Name":"main"}`, "TrailNotFoundException"},
		{"GetTrail", `{"Name":"` + arn + `"}`, "TrailNotFoundException"},
		{"GetTrailStatus", `{"Name":"main"}`, "TrailNotFoundException"},
		{"GetTrailStatus", `{"Name":"` + arn + `"}`, "TrailNotFoundException"},
		{"StartLogging", `{"Name":"` + arn + `"}`, "TrailNotFoundException"},
		{"StopLogging", `{"Name":"` + arn + `"}`, "TrailNotFoundException"},
		{"UpdateTrail", `{"Name":"` + arn + `","S3KeyPrefix":"x"}`, "TrailNotFoundException"},
		{"DeleteTrail", `{"Name":"` + arn + `"}`, "TrailNotFoundException"},
		{"GetEventSelectors", `{"TrailName":"` + arn + `"}`, "TrailNotFoundException"},
		{"PutEventSelectors", `{"TrailName":"` + arn + `","EventSelectors":[{"ReadWriteType":"WriteOnly"}]}`, "TrailNotFoundException"},
		{"AddTags", `{"ResourceId":"` + arn + `","TagsList":[{"Key":"team","Value":"b"}]}`, "ResourceNotFoundException"},
		{"RemoveTags", `{"ResourceId":"` + arn + `","TagsList":[{"Key":"team"}]}`, "ResourceNotFoundException"},
		{"ListTags", `{"ResourceIdList":["` + arn + `"]}`, "CloudTrailARNInvalidException"},
		{"DescribeTrails", `{"trailNameList":["` + arn + `"]}`, ""},
		// Invalid regions in ARNs.
		{"GetTrail", `{"Name":"arn:aws:cloudtrail:us-east-1x:` + a + `:trail/main"}`, "TrailNotFoundException"},
		{"GetTrailStatus", `{"Name":"arn:aws:cloudtrail::` + b + `:trail/other"}`, "CloudTrailARNInvalidException"},
		{"AddTags", `{"ResourceId":"arn:aws:cloudtrail:../..:` + b + `:trail/other","TagsList":[{"Key":"k"}]}`, "CloudTrailARNInvalidException"},
		{"ListTags", `{"ResourceIdList":["arn:aws:cloudtrail:US-EAST-1:` + b + `:trail/other"]}`, "CloudTrailARNInvalidException"},
		// Oversized TagsList.
		{"AddTags", `{"ResourceId":"arn:aws:cloudtrail:us-east-1:` + b + `:trail/other","TagsList":` + manyTags(201) + `}`, "TagsLimitExceededException"},
		{"AddTags", `{"ResourceId":"arn:aws:cloudtrail:us-east-1:` + b + `:trail/other","TagsList":` + manyTags(51) + `}`, "TagsLimitExceededException"},
		{"CreateTrail", `{"Name":"big","S3BucketName":"logs","TagsList":` + manyTags(51) + `}`, "TagsLimitExceededException"},
		// A's page tokens, as B's and on another operation.
		{"ListTrails", `{"NextToken":` + tok(listToken) + `}`, "OperationNotPermittedException"},
		{"LookupEvents", `{"MaxResults":1,"NextToken":` + tok(lookupToken) + `}`, "InvalidNextTokenException"},
		{"LookupEvents", `{"MaxResults":1,"NextToken":` + tok(listToken) + `}`, "InvalidNextTokenException"},
	} {
		code, resp := do(t, s, b, c.op, c.body)
		if c.code == "" {
			if l, _ := resp["trailList"].([]any); code != 200 || len(l) != 0 {
				t.Errorf("B %s %s = %d %v; want no trail", c.op, c.body, code, resp)
			}
			continue
		}
		if code != 400 || resp["__type"] != c.code {
			t.Errorf("B %s %.120s = %d %v; want 400 %s", c.op, c.body, code, resp, c.code)
		}
	}
	// A's own token on another operation, and A's lookup token on ListTrails.
	for _, c := range []struct{ op, body, code string }{
		{"LookupEvents", `{"NextToken":` + tok(listToken) + `}`, "InvalidNextTokenException"},
		{"ListTrails", `{"NextToken":` + tok(lookupToken) + `}`, "OperationNotPermittedException"},
	} {
		if code, resp := do(t, s, a, c.op, c.body); code != 400 || resp["__type"] != c.code {
			t.Errorf("A %s %s = %d %v; want 400 %s", c.op, c.body, code, resp, c.code)
		}
	}

	// A's trail is as A left it.
	_, resp = do(t, s, a, "GetTrailStatus", `{"Name":"main"}`)
	if resp["IsLogging"] != false {
		t.Errorf("A's GetTrailStatus = %v", resp)
	}
	_, resp = do(t, s, a, "ListTags", `{"ResourceIdList":["`+arn+`"]}`)
	if bs, _ := json.Marshal(resp["ResourceTagList"]); string(bs) != `[{"ResourceId":"`+arn+`","TagsList":[{"Key":"team","Value":"sec"}]}]` {
		t.Errorf("A's ListTags = %s", bs)
	}
	_, resp = do(t, s, a, "GetTrail", `{"Name":"main"}`)
	if tr, _ := resp["Trail"].(map[string]any); tr == nil || tr["S3KeyPrefix"] != nil {
		t.Errorf("A's GetTrail = %v", resp)
	}
	_, resp = do(t, s, a, "GetEventSelectors", `{"TrailName":"main"}`)
	if sels, _ := resp["EventSelectors"].([]any); len(sels) != 1 || sels[0].(map[string]any)["ReadWriteType"] != "All" {
		t.Errorf("A's GetEventSelectors = %v", resp)
	}
}

// manyTags is a TagsList of n distinct tags, as JSON.
func manyTags(n int) string {
	type tag struct{ Key, Value string }
	tags := make([]tag, n)
	for i := range tags {
		tags[i] = tag{Key: "k" + string(rune('a'+i%26)) + string(rune('a'+i/26)), Value: "v"}
	}
	b, _ := json.Marshal(tags)
	return string(b)
}
