package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/cairn-audit/cairn/internal/audit"
)

// responderConfig: twoAccounts' two tenants and a responder in a third
// account; a retention of 90 days, so that records of 2021 test that
// imports are kept from their import.
func responderConfig() string {
	return fmt.Sprintf(twoAccounts, 90) + `  - id: "333333333333"
    users:
      - name: ir
        responder: true
        access_keys:
          - id: AKIARESPONDER0000001
            secret: responder-secret
`
}

// handed is one record of the logs a responder was handed.
type handed struct {
	account, region, id, name string
	readOnly                  bool
	at                        time.Time
}

// handedLogs are records of four accounts (one cairn has no key for), in
// three regions (one an anonymised name), in 2021; one eventID is in two
// accounts at the same second.
func handedLogs() []handed {
	var out []handed
	accounts := []string{"111111111111", "222222222222", "444444444444", "333333333333"}
	regions := []string{"us-east-1", "us-east-1", "eu-west-1", "us-north-2r"}
	base := time.Date(2021, 5, 4, 3, 2, 1, 0, time.UTC)
	for i := range 48 {
		h := handed{account: accounts[i%4], region: regions[i/4%4], id: fmt.Sprintf("ev-%03d", i),
			name: []string{"GetObject", "StopLogging", "ListBuckets"}[i%3], readOnly: i%3 != 1,
			at: base.Add(time.Duration(i/3) * time.Minute)}
		if i%6 == 0 {
			// The same eventID and second in two accounts (111111111111
			// and 444444444444).
			h.id, h.at = fmt.Sprintf("shared-%d", i/12), base.Add(time.Hour)
		}
		out = append(out, h)
	}
	return out
}

func (h handed) raw() []byte {
	return fmt.Appendf(nil, `{"eventVersion":"1.08","eventTime":%q,"eventSource":"cloudtrail.amazonaws.com","eventName":%q,`+
		`"awsRegion":%q,"eventID":%q,"readOnly":%v,"eventType":"AwsApiCall","recipientAccountId":%q,`+
		`"userIdentity":{"type":"IAMUser","accountId":%q,"userName":"mallory","accessKeyId":"AKIAMALLORY000000001"}}`,
		audit.FormatTime(h.at), h.name, h.region, h.id, h.readOnly, h.account, h.account)
}

func handedRecords(t *testing.T, hs []handed) []audit.Record {
	t.Helper()
	var out []audit.Record
	for _, h := range hs {
		r, err := audit.Extract(h.raw())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func importAs(t *testing.T, ts *testServer, akid, secret string, recs []audit.Record) (audit.AppendResult, int) {
	t.Helper()
	c := ts.cairn(t, akid, secret, "us-east-1")
	res, fails, err := c.Importer().AppendReport(context.Background(), recs)
	if err != nil {
		t.Fatalf("import as %s: %v", akid, err)
	}
	for _, f := range fails {
		if f.Code != "AccountMismatch" {
			t.Errorf("import as %s: failure %+v", akid, f)
		}
	}
	waitIngested(t, ts.endpoint)
	return res, len(fails)
}

// keys returns "account/eventID" of the events, sorted.
func keys(t *testing.T, evs []types.Event) []string {
	t.Helper()
	var out []string
	for _, e := range evs {
		r, err := audit.Extract([]byte(aws.ToString(e.CloudTrailEvent)))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r.Account+"/"+r.EventID)
	}
	slices.Sort(out)
	return out
}

func want(hs []handed, keep func(handed) bool) []string {
	var out []string
	for _, h := range hs {
		if keep(h) {
			out = append(out, h.account+"/"+h.id)
		}
	}
	slices.Sort(out)
	return out
}

// imported keeps the handed records only (not cairn's own calls).
func imported(evs []types.Event) []types.Event {
	var out []types.Event
	for _, e := range evs {
		if !strings.Contains(aws.ToString(e.CloudTrailEvent), `"userName":"mallory"`) {
			continue
		}
		out = append(out, e)
	}
	return out
}

// TestResponderImportsAndLooksUpEveryAccount: a responder's key imports
// records of any account (those of an account cairn has no key for too),
// old records are kept from their import, and its lookups cover every
// account of the signed region, narrowed by AccountId, moved to another
// region by AwsRegion, ANDed with the other attributes, paged without
// skipping two accounts' records of the same second and eventID.
func TestResponderImportsAndLooksUpEveryAccount(t *testing.T) {
	ts := startServer(t, responderConfig(), "")
	hs := handedLogs()
	res, failed := importAs(t, ts, "AKIARESPONDER0000001", "responder-secret", handedRecords(t, hs))
	if res.Inserted != len(hs) || failed != 0 {
		t.Fatalf("responder import = %+v, %d refused; want all %d inserted", res, failed, len(hs))
	}
	// Records of invalid accounts or regions are refused one by one, named;
	// the others around them are stored.
	bad := []handed{{account: "12345", region: "us-east-1"}, {account: "../../x1234567", region: "us-east-1"},
		{account: "ANONYMOUS_PRINCIPAL", region: "us-east-1"}, {account: "555555555555", region: "aws-global"},
		{account: "555555555555", region: "us-east-1"}}
	var badRecs []audit.Record
	for i := range bad {
		h := &bad[i]
		h.id, h.name, h.readOnly, h.at = fmt.Sprintf("bad-%d", i), "GetObject", true, time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)
		r, err := audit.Extract(h.raw())
		if err != nil {
			t.Fatal(err)
		}
		badRecs = append(badRecs, r)
	}
	c := ts.cairn(t, "AKIARESPONDER0000001", "responder-secret", "us-east-1")
	res, fails, err := c.Importer().AppendReport(context.Background(), badRecs)
	if err != nil || res.Inserted != 1 || len(fails) != 4 {
		t.Fatalf("import of invalid accounts and regions = %+v, %+v, %v; want 1 inserted, 4 refused", res, fails, err)
	}
	for i, f := range fails {
		if f.Index != i || f.Code != "InvalidRecord" {
			t.Errorf("failure %+v; want record %d InvalidRecord", f, i)
		}
	}
	hs = append(hs, bad[4]) // the valid one, stored
	waitIngested(t, ts.endpoint)
	ir := ts.client("AKIARESPONDER0000001", "responder-secret", "us-east-1")
	scope := func(k, v string) types.LookupAttribute {
		return types.LookupAttribute{AttributeKey: types.LookupAttributeKey(k), AttributeValue: aws.String(v)}
	}
	for _, tc := range []struct {
		name  string
		c     *cloudtrail.Client
		attrs []types.LookupAttribute
		keep  func(handed) bool
	}{
		{"every account, signed region", ir, []types.LookupAttribute{scope("EventName", "GetObject"), scope("Username", "mallory")},
			func(h handed) bool { return h.region == "us-east-1" && h.name == "GetObject" }},
		{"AccountId", ir, []types.LookupAttribute{scope("AccountId", "222222222222")},
			func(h handed) bool { return h.region == "us-east-1" && h.account == "222222222222" }},
		{"AccountId without a key in the config", ir, []types.LookupAttribute{scope("AccountId", "444444444444")},
			func(h handed) bool { return h.region == "us-east-1" && h.account == "444444444444" }},
		{"AwsRegion", ir, []types.LookupAttribute{scope("AwsRegion", "eu-west-1")},
			func(h handed) bool { return h.region == "eu-west-1" }},
		{"AwsRegion anonymised, AccountId and ReadOnly ANDed", ir, []types.LookupAttribute{scope("AwsRegion", "us-north-2r"),
			scope("AccountId", "111111111111"), scope("ReadOnly", "false")},
			func(h handed) bool { return h.region == "us-north-2r" && h.account == "111111111111" && !h.readOnly }},
		{"EventName across accounts", ir, []types.LookupAttribute{scope("EventName", "StopLogging")},
			func(h handed) bool { return h.region == "us-east-1" && h.name == "StopLogging" }},
		{"EventId in several accounts", ir, []types.LookupAttribute{scope("EventId", "shared-0")},
			func(h handed) bool { return h.region == "us-east-1" && h.id == "shared-0" }},
		{"every region", ir, []types.LookupAttribute{scope("AwsRegion", "*")}, func(handed) bool { return true }},
		{"every region, one account, StopLogging", ir, []types.LookupAttribute{scope("AwsRegion", "*"), scope("AccountId", "444444444444"),
			scope("EventName", "StopLogging")}, func(h handed) bool { return h.account == "444444444444" && h.name == "StopLogging" }},
		{"every region ANDed with one", ir, []types.LookupAttribute{scope("AwsRegion", "*"), scope("AwsRegion", "eu-west-1")},
			func(h handed) bool { return h.region == "eu-west-1" }},
		{"two regions ANDed", ir, []types.LookupAttribute{scope("AwsRegion", "us-east-1"), scope("AwsRegion", "eu-west-1")},
			func(handed) bool { return false }},
		{"two accounts ANDed", ir, []types.LookupAttribute{scope("AccountId", "111111111111"), scope("AccountId", "222222222222")},
			func(handed) bool { return false }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := want(hs, tc.keep)
			if len(w) == 0 && !strings.HasPrefix(tc.name, "two") || len(w) > 0 && strings.HasPrefix(tc.name, "two") {
				t.Fatalf("the case tests nothing: %v", w)
			}
			for _, limit := range []int32{1, 3, 50} {
				got := keys(t, imported(lookupAll(t, tc.c, &cloudtrail.LookupEventsInput{LookupAttributes: tc.attrs, MaxResults: aws.Int32(limit)})))
				if !slices.Equal(got, w) {
					t.Errorf("MaxResults %d: got %v\nwant %v", limit, got, w)
				}
			}
		})
	}
	// Bad scope values are the model's error.
	for _, a := range []types.LookupAttribute{scope("AccountId", "12345"), scope("AccountId", "12345678901a"),
		scope("AwsRegion", "../x"), scope("AwsRegion", "aws-global"), scope("AwsRegion", "US-EAST-1")} {
		_, err := ir.LookupEvents(context.Background(), &cloudtrail.LookupEventsInput{LookupAttributes: []types.LookupAttribute{a}})
		if errCode(err) != "InvalidLookupAttributesException" {
			t.Errorf("%s=%s: %v; want InvalidLookupAttributesException", aws.ToString((*string)(&a.AttributeKey)), aws.ToString(a.AttributeValue), err)
		}
	}
	// The responder's own calls are recorded in its own account only.
	waitForEvents(t, ir, 1)
	for _, e := range lookupAll(t, ir, &cloudtrail.LookupEventsInput{LookupAttributes: attr("EventName", "LookupEvents")}) {
		if !strings.Contains(aws.ToString(e.CloudTrailEvent), `"recipientAccountId":"333333333333"`) {
			t.Errorf("a responder's call recorded as %s", aws.ToString(e.CloudTrailEvent))
		}
	}
	for _, e := range lookupAll(t, alice(ts), &cloudtrail.LookupEventsInput{LookupAttributes: attr("Username", "ir")}) {
		t.Errorf("alice sees the responder's call %s", aws.ToString(e.CloudTrailEvent))
	}
}

// TestNonResponderKeepsItsIsolation (hostile-tenant suite): a tenant's key
// imports its own account's records only, and its lookups see its own
// account in its signed region only, whatever AccountId and AwsRegion it
// names (another account or region: an empty answer, as for a value no
// record has).
func TestNonResponderKeepsItsIsolation(t *testing.T) {
	ts := startServer(t, responderConfig(), "")
	hs := handedLogs()
	res, failed := importAs(t, ts, "AKIAALICE00000000001", "alice-secret-key", handedRecords(t, hs))
	own := want(hs, func(h handed) bool { return h.account == "111111111111" })
	if res.Inserted != len(own) || failed != len(hs)-len(own) {
		t.Fatalf("alice's import = %+v, %d refused; want %d inserted, %d refused", res, failed, len(own), len(hs)-len(own))
	}
	// The responder imports the rest, so that there is something to leak.
	importAs(t, ts, "AKIARESPONDER0000001", "responder-secret", handedRecords(t, hs))
	scope := func(k, v string) types.LookupAttribute {
		return types.LookupAttribute{AttributeKey: types.LookupAttributeKey(k), AttributeValue: aws.String(v)}
	}
	a := alice(ts)
	aWest := ts.client("AKIAALICE00000000001", "alice-secret-key", "eu-west-1")
	b := ts.client("AKIABOB0000000000001", "bob-secret-key", "us-east-1")
	mine := func(acct, region string) func(handed) bool {
		return func(h handed) bool { return h.account == acct && h.region == region }
	}
	none := func(handed) bool { return false }
	for _, tc := range []struct {
		name  string
		c     *cloudtrail.Client
		attrs []types.LookupAttribute
		keep  func(handed) bool
	}{
		{"alice", a, nil, mine("111111111111", "us-east-1")},
		{"alice, own AccountId", a, []types.LookupAttribute{scope("AccountId", "111111111111")}, mine("111111111111", "us-east-1")},
		{"alice, another AccountId", a, []types.LookupAttribute{scope("AccountId", "222222222222")}, none},
		{"alice, an unknown AccountId", a, []types.LookupAttribute{scope("AccountId", "444444444444")}, none},
		{"alice, own AwsRegion", a, []types.LookupAttribute{scope("AwsRegion", "us-east-1")}, mine("111111111111", "us-east-1")},
		{"alice, another AwsRegion", a, []types.LookupAttribute{scope("AwsRegion", "eu-west-1")}, none},
		{"alice, every region", a, []types.LookupAttribute{scope("AwsRegion", "*")}, mine("111111111111", "us-east-1")},
		{"alice, an anonymised AwsRegion", a, []types.LookupAttribute{scope("AwsRegion", "us-north-2r")}, none},
		{"alice, another account and region", a, []types.LookupAttribute{scope("AwsRegion", "eu-west-1"), scope("AccountId", "222222222222")}, none},
		{"alice signed in eu-west-1", aWest, nil, mine("111111111111", "eu-west-1")},
		{"alice signed in eu-west-1, AwsRegion us-east-1", aWest, []types.LookupAttribute{scope("AwsRegion", "us-east-1")}, none},
		{"bob", b, nil, mine("222222222222", "us-east-1")},
		{"bob, an EventId of two other accounts", b, []types.LookupAttribute{scope("EventId", "shared-0")}, none},
		{"bob, alice's AccountId", b, []types.LookupAttribute{scope("AccountId", "111111111111")}, none},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs := lookupAll(t, tc.c, &cloudtrail.LookupEventsInput{LookupAttributes: tc.attrs, MaxResults: aws.Int32(7)})
			if got, w := keys(t, imported(evs)), want(hs, tc.keep); !slices.Equal(got, w) {
				t.Errorf("got %v\nwant %v", got, w)
			}
			// cairn's own calls in the answer are the caller's own too.
			acct := "111111111111"
			if tc.c == b {
				acct = "222222222222"
			}
			for _, e := range evs {
				if !strings.Contains(aws.ToString(e.CloudTrailEvent), `"recipientAccountId":"`+acct+`"`) {
					t.Errorf("sees %s", aws.ToString(e.CloudTrailEvent))
				}
			}
		})
	}
}
