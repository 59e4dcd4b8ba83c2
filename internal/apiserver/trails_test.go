package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/awsjson"
	"github.com/cairn-audit/cairn/internal/bucket/local"
	"github.com/cairn-audit/cairn/internal/trail"
)

// headFeed is a store with nothing to deliver.
type headFeed struct{}

func (headFeed) ReadAppended(context.Context, int64, int) ([]audit.Appended, error) { return nil, nil }
func (headFeed) LastSeq(context.Context) (int64, error)                             { return 7, nil }

// trailService returns a trail.Service over a registry and a local bucket
// "logs" in temporary folders, listing pageSize trails a page.
func trailService(t testing.TB, pageSize int) *trail.Service {
	reg, err := trail.OpenRegistry(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	logs, err := local.New("logs", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &trail.Service{Registry: reg, Feed: headFeed{}, MaxPerRegion: 5, ListPageSize: pageSize,
		Bucket: func(name string) (trail.Bucket, bool) { return logs, name == "logs" }}
}

func trailHandlerMap(svc *trail.Service) map[string]Handler {
	h := TrailHandlers(svc)
	maps.Copy(h, EventSelectorHandlers(svc))
	maps.Copy(h, TrailTagHandlers(svc))
	return h
}

// TestTrailOperationsOnTheWire drives the trail handlers over HTTP on a
// real trail.Service: the wire shapes, the errors (naming the member the
// request lacked), ListTrails' NextToken, and the responseElements the
// handlers derive for the record of a write.
func TestTrailOperationsOnTheWire(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	st := audittest.NewMemStore()
	s := New(Config{Auth: fakeAuth{}, History: st, Recorder: syncRecorder{st},
		TokenKey: []byte("0123456789abcdef0123456789abcdef"), Now: func() time.Time { return now },
		Handlers: trailHandlerMap(trailService(t, 1))})
	const acct = "111111111111"
	for _, c := range []struct {
		op, body string
		code     int
		want     map[string]any // members of the answer
	}{
		{"CreateTrail", `{"Name":"main","S3BucketName":"logs","TagsList":[{"Key":"team","Value":"sec"}]}`, 200,
			map[string]any{"Name": "main", "TrailARN": "arn:aws:cloudtrail:us-east-1:" + acct + ":trail/main", "IncludeGlobalServiceEvents": true}},
		{"CreateTrail", `{"Name":"second","S3BucketName":"logs"}`, 200, map[string]any{"Name": "second"}},
		{"CreateTrail", `{"Name":"main","S3BucketName":"logs"}`, 400, map[string]any{"__type": "TrailAlreadyExistsException"}},
		{"CreateTrail", `{"Name":"x!","S3BucketName":"logs"}`, 400, map[string]any{"__type": "InvalidTrailNameException"}},
		{"CreateTrail", `{"Name":"other","S3BucketName":"nope"}`, 400, map[string]any{"__type": "S3BucketDoesNotExistException"}},
		{"CreateTrail", `{"Name":"other","S3BucketName":"logs","KmsKeyId":"k"}`, 400, map[string]any{"__type": "UnsupportedOperationException"}},
		{"CreateTrail", `{"Name":7}`, 400, map[string]any{"__type": "SerializationException"}},
		{"UpdateTrail", `{"S3KeyPrefix":"p"}`, 400, map[string]any{"__type": "TrailNotProvidedException", "message": "Name is required."}},
		{"UpdateTrail", `{"Name":"main","S3KeyPrefix":"p"}`, 200, map[string]any{"S3KeyPrefix": "p"}},
		{"GetTrail", `{"Name":"main"}`, 200, nil},
		{"GetTrail", `{"Name":"absent"}`, 400, map[string]any{"__type": "TrailNotFoundException"}},
		// ListTrails models no token error: OperationNotPermitted is one of its two.
		{"ListTrails", `{"NextToken":"!!"}`, 400, map[string]any{"__type": "OperationNotPermittedException"}},
		{"StartLogging", `{"Name":"main"}`, 200, nil},
		{"GetTrailStatus", `{"Name":"main"}`, 200, map[string]any{"IsLogging": true, "StartLoggingTime": float64(now.Unix()),
			"TimeLoggingStarted": "2026-06-01T12:00:00Z", "LatestDeliveryAttemptTime": ""}},
		{"StopLogging", `{"Name":"main"}`, 200, nil},
		{"GetEventSelectors", `{}`, 400, map[string]any{"__type": "InvalidTrailNameException", "message": "TrailName is required."}},
		{"PutEventSelectors", `{"TrailName":"main","EventSelectors":[{"ReadWriteType":"WriteOnly"}]}`, 200,
			map[string]any{"TrailARN": "arn:aws:cloudtrail:us-east-1:" + acct + ":trail/main"}},
		{"PutEventSelectors", `{"TrailName":"main"}`, 400, map[string]any{"__type": "InvalidEventSelectorsException"}},
		{"GetInsightSelectors", `{"TrailName":"main"}`, 400, map[string]any{"__type": "InsightNotEnabledException"}},
		{"PutInsightSelectors", `{"TrailName":"main","EventDataStore":"x","InsightSelectors":[]}`, 400, map[string]any{"__type": "InvalidParameterCombinationException"}},
		{"PutInsightSelectors", `{"TrailName":"main","InsightSelectors":[{"InsightType":"ApiCallRateInsight"}]}`, 200, nil},
		{"GetInsightSelectors", `{"TrailName":"main"}`, 200, nil},
		{"AddTags", `{"ResourceId":"main","TagsList":[]}`, 400, map[string]any{"__type": "CloudTrailARNInvalidException"}},
		{"ListTags", `{"ResourceIdList":[]}`, 400, map[string]any{"__type": "CloudTrailARNInvalidException"}}, // ListTags models no InvalidParameter
		{"RemoveTags", `{"ResourceId":"arn:aws:cloudtrail:us-east-1:` + acct + `:trail/main","TagsList":[{"Key":"team"}]}`, 200, nil},
		{"DeleteTrail", `{"Name":"second"}`, 200, nil},
	} {
		code, resp := do(t, s, acct, c.op, c.body)
		if code != c.code {
			t.Errorf("%s %s = %d %v; want %d", c.op, c.body, code, resp, c.code)
			continue
		}
		for k, v := range c.want {
			if resp[k] != v {
				t.Errorf("%s %s: %s = %v; want %v (%v)", c.op, c.body, k, resp[k], v, resp)
			}
		}
	}

	// Shapes the SDKs read.
	_, resp := do(t, s, acct, "DescribeTrails", `{}`)
	if l, _ := resp["trailList"].([]any); len(l) != 1 || l[0].(map[string]any)["HasCustomEventSelectors"] != true ||
		l[0].(map[string]any)["HasInsightSelectors"] != true || l[0].(map[string]any)["S3KeyPrefix"] != "p" {
		t.Errorf("DescribeTrails = %v", resp)
	}
	_, resp = do(t, s, acct, "ListTags", `{"ResourceIdList":["arn:aws:cloudtrail:us-east-1:`+acct+`:trail/main"]}`)
	if b, _ := json.Marshal(resp["ResourceTagList"]); string(b) != `[{"ResourceId":"arn:aws:cloudtrail:us-east-1:`+acct+`:trail/main","TagsList":[]}]` {
		t.Errorf("ListTags = %s", b)
	}
	_, resp = do(t, s, acct, "GetInsightSelectors", `{"TrailName":"main"}`)
	if b, _ := json.Marshal(resp["InsightSelectors"]); string(b) != `[{"InsightType":"ApiCallRateInsight"}]` {
		t.Errorf("GetInsightSelectors = %s", b)
	}

	// ListTrails pages (one trail a page here) with a NextToken.
	do(t, s, acct, "CreateTrail", `{"Name":"third","S3BucketName":"logs"}`)
	var names []any
	body := `{}`
	for range 3 {
		_, resp := do(t, s, acct, "ListTrails", body)
		for _, tr := range resp["Trails"].([]any) {
			names = append(names, tr.(map[string]any)["Name"])
		}
		tok, _ := resp["NextToken"].(string)
		if tok == "" {
			break
		}
		b, _ := json.Marshal(map[string]string{"NextToken": tok})
		body = string(b)
	}
	if b, _ := json.Marshal(names); string(b) != `["main","third"]` {
		t.Errorf("ListTrails pages = %s", b)
	}

	// The record of a successful write carries the answer as
	// responseElements, members lower-cased; a failed one none.
	page, err := st.Lookup(context.Background(), audit.Query{Account: acct, Region: "us-east-1", Category: audit.CategoryManagement, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range page.Records {
		var m map[string]any
		json.Unmarshal(r.Raw, &m)
		re, _ := m["responseElements"].(map[string]any)
		switch {
		case r.EventName == "UpdateTrail" && m["errorCode"] == nil:
			seen["UpdateTrail"] = true
			if re["s3KeyPrefix"] != "p" || re["trailARN"] != "arn:aws:cloudtrail:us-east-1:"+acct+":trail/main" {
				t.Errorf("UpdateTrail record: %s", r.Raw)
			}
		case r.EventName == "PutEventSelectors" && m["errorCode"] == nil:
			seen["PutEventSelectors"] = true
			if sels, _ := re["eventSelectors"].([]any); len(sels) != 1 || sels[0].(map[string]any)["readWriteType"] != "WriteOnly" {
				t.Errorf("PutEventSelectors record: %s", r.Raw)
			}
		case r.EventName == "PutInsightSelectors" && m["errorCode"] == nil:
			seen["PutInsightSelectors"] = true
			if _, ok := re["insightSelectors"]; !ok {
				t.Errorf("PutInsightSelectors record: %s", r.Raw)
			}
		case m["errorCode"] != nil || r.EventName == "StartLogging" || r.EventName == "DeleteTrail":
			if m["responseElements"] != nil {
				t.Errorf("%s record has responseElements: %s", r.EventName, r.Raw)
			}
		}
	}
	if len(seen) != 3 {
		t.Errorf("records with responseElements seen: %v", seen)
	}
}

// FuzzTrailSelectorBodies sends arbitrary bodies to PutEventSelectors and
// PutInsightSelectors on a real trail.Service: each answers a value or an
// AWS-shaped error, never panics, and whatever it stores, the trail's
// selectors can be read back.
func FuzzTrailSelectorBodies(f *testing.F) {
	for _, s := range []string{
		`{"TrailName":"main","EventSelectors":[{"ReadWriteType":"WriteOnly","DataResources":[{"Type":"AWS::S3::Object","Values":["arn:aws:s3:::b/"]}]}]}`,
		`{"TrailName":"main","AdvancedEventSelectors":[{"Name":"x","FieldSelectors":[{"Field":"eventCategory","Equals":["Data"]},{"Field":"resources.ARN","StartsWith":["arn:aws:s3:::b/"],"NotEndsWith":[".log"]}]}]}`,
		`{"TrailName":"main","AdvancedEventSelectors":[{"FieldSelectors":[{"Field":null}]}]}`,
		`{"TrailName":"main","EventSelectors":[{"DataResources":[{"Values":["x"]}]}]}`,
		`{"TrailName":"main","InsightSelectors":[{"InsightType":"ApiCallRateInsight"}]}`,
		`{"TrailName":"arn:aws:cloudtrail:us-east-1:111111111111:trail/main","EventSelectors":[]}`,
	} {
		f.Add([]byte(s))
	}
	svc := trailService(f, 0)
	caller := Caller{Principal: audit.Principal{AccountID: "111111111111", Region: "us-east-1"}}
	h := trailHandlerMap(svc)
	if _, err := h["CreateTrail"](context.Background(), &Request{Caller: caller, Body: []byte(`{"Name":"main","S3BucketName":"logs"}`)}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, op := range []string{"PutEventSelectors", "PutInsightSelectors", "GetEventSelectors"} {
			_, err := h[op](context.Background(), &Request{Caller: caller, Body: body})
			var ae *audit.Error
			var we *awsjson.Error
			if err != nil && !errors.As(err, &ae) && !errors.As(err, &we) {
				t.Fatalf("%s: error that is not AWS-shaped: %T %v", op, err, err)
			}
		}
	})
}
