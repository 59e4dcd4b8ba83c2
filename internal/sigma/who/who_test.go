package who

import (
	"strings"
	"testing"

	"github.com/cairn-audit/cairn/internal/sigma"
)

func TestParse(t *testing.T) {
	cases := []struct {
		in   string
		kind Kind // 0: refused
	}{
		{"AKIAAM80VXLJF8NPK4VC", AccessKey},
		{"ASIAP5CT9NN8EYVU1FXV", AccessKey},
		{" AKIAAM80VXLJF8NPK4VC\n", AccessKey},
		{"arn:aws:iam::017622104382:user/christophe", ARN},
		{"arn:aws:iam::017622104382:user/path/to/christophe", ARN},
		{"arn:aws:sts::457448411975:assumed-role/r/s", ARN},
		{"arn:aws:iam::457448411975:root", ARN},
		{"arn:aws-us-gov:iam::457448411975:role/admin", Role},
		{"arn:aws:iam::457448411975:role/service-role/x", Role},
		{"christophe", UserName},
		{"abc@example.com", UserName},
		{"AIDASSXYG8SJ3JDII10C", UserName}, // a principal ID is no key: matched as a name
		{"", 0},
		{"   ", 0},
		{"arn:aws", 0},
		{"arn:aws:iam::1:", 0},
		{"two words", 0},
		{"a/b", 0},
		{"tab\there", 0},
		{"arn:aws:iam::1:user/" + strings.Repeat("x", 3000), 0},
	}
	for _, c := range cases {
		p, err := Parse(c.in)
		if c.kind == 0 {
			if err == nil {
				t.Errorf("Parse(%q) = %+v; want an error", c.in, p)
			}
			continue
		}
		if err != nil || p.Kind != c.kind {
			t.Errorf("Parse(%q) = %+v, %v; want kind %d", c.in, p, err, c.kind)
		}
	}
}

func record(t *testing.T, js string) sigma.Record {
	t.Helper()
	r, err := sigma.DecodeRecord([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestProfile: sessions the principal obtained count as its own, each
// call once, however often it is seen; the summary's lists are bounded.
func TestProfile(t *testing.T) {
	const user = `"userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::1:user/u","userName":"u","accessKeyId":"AKIAUSER0000000000001"}`
	recs := []string{
		// the session's call, read before the AssumeRole that made it
		`{"eventID":"3","eventTime":"2024-01-01T00:00:03Z","recipientAccountId":"1","eventSource":"ec2.amazonaws.com","eventName":"RunInstances","readOnly":false,"userIdentity":{"type":"AssumedRole","arn":"arn:aws:sts::1:assumed-role/r/s","accessKeyId":"ASIASESSION000000001"}}`,
		`{"eventID":"1","eventTime":"2024-01-01T00:00:01Z","recipientAccountId":"1","eventSource":"sts.amazonaws.com","eventName":"AssumeRole","readOnly":true,` + user + `,"requestParameters":{"roleArn":"arn:aws:iam::1:role/r"},"responseElements":{"credentials":{"accessKeyId":"ASIASESSION000000001"}}}`,
		`{"eventID":"2","eventTime":"2024-01-01T00:00:02Z","recipientAccountId":"1","eventSource":"iam.amazonaws.com","eventName":"CreateUser","readOnly":false,"errorCode":"AccessDenied","sourceIPAddress":"198.51.100.1",` + user + `}`,
		`{"eventID":"2","eventTime":"2024-01-01T00:00:02Z","recipientAccountId":"1","eventSource":"iam.amazonaws.com","eventName":"CreateUser","readOnly":false,"errorCode":"AccessDenied",` + user + `}`,
		`{"eventID":"4","eventTime":"2024-01-01T00:00:04Z","recipientAccountId":"1","eventSource":"s3.amazonaws.com","eventName":"ListBuckets","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::1:user/other","accessKeyId":"AKIAOTHER00000000001"}}`,
	}
	p, _ := Parse("arn:aws:iam::1:user/u")
	pr := New(p, Config{})
	for _, js := range recs {
		pr.Observe(record(t, js))
	}
	if !pr.HasSessions() {
		t.Fatal("no session learnt from the AssumeRole response")
	}
	for _, js := range recs {
		pr.ObserveSessions(record(t, js))
	}
	rep := pr.Report()
	s := rep.Summary
	if s.Calls != 3 || s.WriteCalls != 2 || s.ErrorCalls != 1 || len(rep.Timeline) != 3 {
		t.Errorf("calls %d, writes %d, errors %d, timeline %d; want 3, 2, 1, 3", s.Calls, s.WriteCalls, s.ErrorCalls, len(rep.Timeline))
	}
	if len(s.RolesAssumed) != 1 || s.RolesAssumed[0].Value != "arn:aws:iam::1:role/r" || len(s.Sessions) != 1 {
		t.Errorf("roles %v, sessions %v", s.RolesAssumed, s.Sessions)
	}
	if rep.Timeline[0].EventID != "1" || rep.Timeline[2].EventID != "3" {
		t.Errorf("timeline not in time order: %v", rep.Timeline)
	}
	// bounded lists and timeline
	pr = New(Principal{UserName, "u"}, Config{MaxTimeline: 2, MaxValues: 2})
	for i, ip := range []string{"a", "b", "c", "d"} {
		pr.Observe(record(t, `{"eventID":"`+ip+`","eventTime":"2024-01-01T00:00:0`+string(rune('1'+i))+`Z","sourceIPAddress":"`+ip+`",`+user+`}`))
	}
	rep = pr.Report()
	if len(rep.Timeline) != 2 || rep.NotListed != 2 || len(rep.Summary.SourceIPs) != 3 || rep.Summary.Calls != 4 {
		t.Errorf("timeline %d (+%d), IPs %v, calls %d; want 2 (+2), a, b and (other), 4", len(rep.Timeline), rep.NotListed, rep.Summary.SourceIPs, rep.Summary.Calls)
	}
}
