package audit_test

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
)

func TestExtractRealRecords(t *testing.T) {
	recs := audittest.RealRecords(t)
	if len(recs) < 4000 {
		t.Fatalf("found %d real records; want the 4,373 of PROVENANCE.md", len(recs))
	}
	cats := map[Category]int{}
	for _, rr := range recs {
		raw, i := rr.Raw, rr.File+"#"+strconv.Itoa(rr.Index)
		r, err := Extract(raw)
		if err != nil {
			t.Errorf("record %s: Extract = %v", i, err)
			continue
		}
		if !bytes.Equal(r.Raw, raw) {
			t.Errorf("record %s: Raw changed", i)
		}
		// Cross-check the index against a generic decoding.
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		if r.EventID != m["eventID"] || r.Region != m["awsRegion"] {
			t.Errorf("record %s: EventID/Region = %q/%q; want %v/%v", i, r.EventID, r.Region, m["eventID"], m["awsRegion"])
		}
		if want, _ := time.Parse(time.RFC3339, m["eventTime"].(string)); !r.Time.Equal(want) {
			t.Errorf("record %s: Time = %v; want %v", i, r.Time, want)
		}
		if ro, ok := m["readOnly"].(bool); ok && r.ReadOnly != TriOf(ro) {
			t.Errorf("record %s: ReadOnly = %v; want %v", i, r.ReadOnly, ro)
		}
		if ui, ok := m["userIdentity"].(map[string]any); ok {
			if ak, _ := ui["accessKeyId"].(string); r.AccessKeyID != ak {
				t.Errorf("record %s: AccessKeyID = %q; want %q", i, r.AccessKeyID, ak)
			}
			if ui["type"] == "IAMUser" && r.Username != ui["userName"] {
				t.Errorf("record %s: Username = %q; want userName %q", i, r.Username, ui["userName"])
			}
		}
		if acct, _ := m["recipientAccountId"].(string); acct != "" && r.Account != acct {
			t.Errorf("record %s: Account = %q; want %q", i, r.Account, acct)
		}
		if rs, ok := m["resources"].([]any); ok && len(r.Resources) == 0 && len(rs) > 0 {
			t.Errorf("record %s: no Resources from %d resources", i, len(rs))
		}
		cats[r.Category]++
	}
	if cats[CategoryManagement] == 0 {
		t.Errorf("no management records among %v", cats)
	}
}

func TestExtractRejects(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"empty", ``, "not a JSON object"},
		{"array", `[]`, "not a JSON object"},
		{"string", `"x"`, "not a JSON object"},
		{"truncated", `{"eventID":"a"`, "invalid record"},
		{"no id", `{"eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1"}`, "no eventID"},
		{"no region", `{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","recipientAccountId":"1"}`, "no awsRegion"},
		{"no account", `{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r"}`, "no recipientAccountId"},
		{"bad time", `{"eventID":"e","eventTime":"yesterday","awsRegion":"r","recipientAccountId":"1"}`, "eventTime"},
		{"id wrong type", `{"eventID":7,"eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1"}`, "invalid record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Extract([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Extract(%s) = %v; want an error containing %q", tc.in, err, tc.want)
			}
		})
	}
}

func TestExtractLenientOnOddMembers(t *testing.T) {
	// Members cairn does not need may have any shape: the record is kept.
	in := `{"eventID":"e","eventTime":"2024-01-01T00:00:00.5Z","awsRegion":"r","userIdentity":"weird",` +
		`"resources":{"not":"a list"},"readOnly":"maybe","recipientAccountId":"111111111111"}`
	r, err := Extract([]byte(in))
	if err != nil {
		t.Fatalf("Extract = %v", err)
	}
	if r.ReadOnly != Unset || len(r.Resources) != 0 || r.Username != "" {
		t.Errorf("Extract = %+v; want odd members ignored", r)
	}
	if want := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC); !r.Time.Equal(want) {
		t.Errorf("Time = %v; want %v (whole seconds)", r.Time, want)
	}
}

func TestUsername(t *testing.T) {
	for _, tc := range []struct{ typ, name, arn, principal, obo, want string }{
		{"IAMUser", "alice", "arn:aws:iam::1:user/alice", "AIDA", "", "alice"},
		{"Root", "", "arn:aws:iam::1:root", "1", "", "root"},
		{"Root", "my-alias", "arn:aws:iam::1:root", "1", "", "my-alias"},
		{"AssumedRole", "", "arn:aws:sts::1:assumed-role/Admin/bob-session", "AROA:bob-session", "", "bob-session"},
		{"AssumedRole", "", "", "AROAX:sess", "", "sess"},
		{"FederatedUser", "", "arn:aws:sts::1:federated-user/carol", "1:carol", "", "carol"},
		{"AWSService", "", "", "", "", ""},
		{"IdentityCenterUser", "", "", "", "user-id-1", "user-id-1"},
	} {
		if got := Username(tc.typ, tc.name, tc.arn, tc.principal, tc.obo); got != tc.want {
			t.Errorf("Username(%q, %q, %q, %q, %q) = %q; want %q", tc.typ, tc.name, tc.arn, tc.principal, tc.obo, got, tc.want)
		}
	}
}

func TestResourceName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"arn:aws:s3:::my-bucket", "my-bucket"},
		{"arn:aws:s3:::my-bucket/a/b.txt", "my-bucket/a/b.txt"},
		{"arn:aws:iam::111111111111:user/path/alice", "alice"},
		{"arn:aws:ec2:us-east-1:111111111111:instance/i-0abc", "i-0abc"},
		{"arn:aws:lambda:us-east-1:111111111111:function:fn", "fn"},
		{"arn:aws:sns:us-east-1:111111111111:topic", "topic"},
		{"i-0abc", "i-0abc"},
		{"arn:broken", "arn:broken"},
	} {
		if got := ResourceName(tc.in); got != tc.want {
			t.Errorf("ResourceName(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

func TestEventMarshalOrderAndNulls(t *testing.T) {
	ro, mgmt := true, true
	e := Event{
		EventVersion: EventVersion,
		UserIdentity: &UserIdentity{Type: "IAMUser", PrincipalID: "AIDAX", ARN: "arn:aws:iam::111111111111:user/alice",
			AccountID: "111111111111", AccessKeyID: "AKIAX", UserName: "alice"},
		EventTime:   FormatTime(time.Date(2024, 5, 1, 12, 34, 56, 789, time.UTC)),
		EventSource: "cloudtrail.amazonaws.com", EventName: "LookupEvents", AWSRegion: "us-east-1",
		SourceIPAddress: "127.0.0.1", UserAgent: "aws-cli/1.45", RequestID: "req", EventID: "ev",
		ReadOnly: &ro, EventType: "AwsApiCall", ManagementEvent: &mgmt, RecipientAccountID: "111111111111",
		EventCategory: "Management",
	}
	got, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"eventVersion":"1.11","userIdentity":{"type":"IAMUser","principalId":"AIDAX","arn":"arn:aws:iam::111111111111:user/alice","accountId":"111111111111","accessKeyId":"AKIAX","userName":"alice"},"eventTime":"2024-05-01T12:34:56Z","eventSource":"cloudtrail.amazonaws.com","eventName":"LookupEvents","awsRegion":"us-east-1","sourceIPAddress":"127.0.0.1","userAgent":"aws-cli/1.45","requestParameters":null,"responseElements":null,"requestID":"req","eventID":"ev","readOnly":true,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"111111111111","eventCategory":"Management"}`
	if string(got) != want {
		t.Errorf("Marshal =\n%s\nwant\n%s", got, want)
	}
}

func FuzzExtract(f *testing.F) {
	f.Add([]byte(`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1"}`))
	f.Add([]byte(`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","userIdentity":{"type":"AssumedRole","arn":"x/"},"resources":[{"ARN":"arn:aws:s3:::b"},{}]}`))
	f.Add([]byte(`{"insightDetails":{"eventName":"x"},"eventType":"AwsCloudTrailInsight"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Extract(b)
		if err == nil && (r.EventID == "" || r.Account == "" || r.Region == "") {
			t.Errorf("Extract accepted a record without its keys: %+v", r)
		}
	})
}

// BenchmarkExtract indexes every real record once per iteration.
func BenchmarkExtract(b *testing.B) {
	recs := audittest.RealRecords(b)
	var n int
	for _, rr := range recs {
		n += len(rr.Raw)
	}
	b.SetBytes(int64(n))
	for b.Loop() {
		for _, rr := range recs {
			if _, err := Extract(rr.Raw); err != nil && len(rr.Raw) < 100 {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(len(recs)*b.N)/b.Elapsed().Seconds(), "records/s")
}
