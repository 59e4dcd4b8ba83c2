package apiserver

import (
	"fmt"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
)

// TestLookupTokenOfResponderNotReplayable: a NextToken a responder's
// lookup was given (every account, another account named by AccountId,
// every region) is refused when a non-responder replays it with the same
// parameters: InvalidNextTokenException, never a page of another account.
// A responder's token narrowed to the replaying account's own records is
// the same query as that account's own and pages its records only.
func TestLookupTokenOfResponderNotReplayable(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	s, st := newTestServer(t, now, 0)
	var recs []audit.Record
	for _, acct := range []string{"111111111111", "222222222222"} {
		for i := range 4 {
			raw := fmt.Sprintf(`{"eventVersion":"1.08","eventTime":%q,"eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"us-east-1","eventID":"%s-%d","readOnly":true,"eventType":"AwsApiCall","recipientAccountId":%q}`,
				audit.FormatTime(now.Add(-time.Duration(i)*time.Minute)), acct, i, acct)
			r, err := audit.Extract([]byte(raw))
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, r)
		}
	}
	if _, err := st.Append(t.Context(), recs); err != nil {
		t.Fatal(err)
	}
	const name = `{"AttributeKey":"EventName","AttributeValue":"GetObject"}`
	scope := func(k, v string) string { return `,{"AttributeKey":"` + k + `","AttributeValue":"` + v + `"}` }
	for _, tc := range []struct {
		name, attrs, replayer string
		refused               bool
	}{
		{"every account", name, "222222222222", true},
		{"another account's AccountId", name + scope("AccountId", "111111111111"), "222222222222", true},
		{"every region", name + scope("AwsRegion", "*"), "222222222222", true},
		{"every region, another account", name + scope("AwsRegion", "*") + scope("AccountId", "111111111111"), "222222222222", true},
		{"the replayer's own AccountId", name + scope("AccountId", "222222222222"), "222222222222", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"MaxResults":1,"LookupAttributes":[` + tc.attrs + `]`
			code, out := doAs(t, s, "333333333333", true, "LookupEvents", body+"}")
			tok, _ := out["NextToken"].(string)
			if code != 200 || tok == "" {
				t.Fatalf("responder's first page: %d %v; want a NextToken", code, out)
			}
			code, out = do(t, s, tc.replayer, "LookupEvents", body+`,"NextToken":"`+tok+`"}`)
			if tc.refused {
				if code != 400 || out["__type"] != "InvalidNextTokenException" {
					t.Errorf("replayed by %s: %d %v; want 400 InvalidNextTokenException", tc.replayer, code, out)
				}
				return
			}
			if code != 200 {
				t.Fatalf("replayed by %s: %d %v", tc.replayer, code, out)
			}
			evs, _ := out["Events"].([]any)
			if len(evs) == 0 {
				t.Fatalf("replayed by %s: no events; want its own next one", tc.replayer)
			}
			for _, e := range evs {
				if id := e.(map[string]any)["EventId"].(string); id[:12] != tc.replayer {
					t.Errorf("replayed by %s: sees %s", tc.replayer, id)
				}
			}
		})
	}
}
