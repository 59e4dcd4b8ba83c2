package lake

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestPutAuditEventsCallRecordsHostile: what a PutAuditEvents call's own
// record holds when another tenant makes it. Account B sends to account
// A's channel (with an externalId), to an ARN JSON must escape, and to an
// ARN past the record's bound: each is refused with AWS's error, recorded
// only in B's own history, with the channel it named as requestParameters
// and never the events it sent nor the externalId; A's history gets
// nothing of B's calls.
func TestPutAuditEventsCallRecordsHostile(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const keyB = "AKIABBBBBBBBBBBBBBBB"
	arnA := channelTenants(t, e)[0].channel
	body, _ := json.Marshal(map[string]any{"auditEvents": []map[string]any{{"id": "x", "eventData": eventData("PayloadMarker", "111111111111")}}})
	send := func(channel string) (int, map[string]any) {
		r, _ := http.NewRequest("POST", e.url+"/PutAuditEvents?channelArn="+url.QueryEscape(channel)+"&externalId=SharedSecret", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		return e.send(t, keyB, "cloudtrail-data", r, body)
	}
	escaped := "arn:aws:cloudtrail:us-east-1:111111111111:channel/" + strings.Repeat("<", 1000)
	for _, c := range []struct {
		name, channel string
		status        int
		code, params  string
	}{
		{"another account's channel", arnA, 403, "ChannelInsufficientPermission", `{"channelArn":` + quote(arnA) + `}`},
		{"an ARN JSON escapes", escaped, 400, "InvalidChannelARN", `{"channelArn":` + quote(escaped) + `}`},
		// 20,000 characters, 120,000 bytes escaped: past requestParameters'
		// bound, so recorded as null.
		{"an ARN past the record's bound", escaped + strings.Repeat("<", 19000), 400, "InvalidChannelARN", `null`},
	} {
		mark, _ := e.store.ReadAppended(ctx, 0, 1<<20)
		status, out := send(c.channel)
		if status != c.status || out["__type"] != c.code || out["message"] == "" {
			t.Errorf("%s: %d %v; want %d %s with a message", c.name, status, out, c.status, c.code)
		}
		all, _ := e.store.ReadAppended(ctx, 0, 1<<20)
		var recorded int
		for _, s := range all[len(mark):] {
			r := s.Record
			if bytes.Contains(r.Raw, []byte("PayloadMarker")) || bytes.Contains(r.Raw, []byte("SharedSecret")) {
				t.Errorf("%s: a record holds the events sent or the externalId: %s", c.name, r.Raw)
			}
			if r.EventName != "PutAuditEvents" {
				continue
			}
			recorded++
			if r.Account != "222222222222" {
				t.Errorf("%s: B's call recorded in account %s's history", c.name, r.Account)
			}
			var rec struct {
				ErrorCode         string          `json:"errorCode"`
				RequestParameters json.RawMessage `json:"requestParameters"`
			}
			if err := json.Unmarshal(r.Raw, &rec); err != nil {
				t.Fatal(err)
			}
			var got, want any
			json.Unmarshal(rec.RequestParameters, &got)
			json.Unmarshal([]byte(c.params), &want)
			if rec.ErrorCode != c.code || !jsonEqual(got, want) {
				t.Errorf("%s: recorded %s with requestParameters %.200s; want %s with %.200s", c.name, rec.ErrorCode, rec.RequestParameters, c.code, c.params)
			}
		}
		if recorded != 1 {
			t.Errorf("%s: %d records of the call; want 1", c.name, recorded)
		}
	}
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}
