package awsjson

import (
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		in, prefix, op string
		ok             bool
	}{
		{"com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents", "CloudTrail_20131101", "LookupEvents", true},
		{"CloudTrail_20131101.LookupEvents", "CloudTrail_20131101", "LookupEvents", true},
		{"LookupEvents", "", "", false},
		{"", "", "", false},
		{"CloudTrail_20131101.", "", "", false},
		{".LookupEvents", "", "", false},
		{"CloudTrail_20131101.Look up", "", "", false},
		{"a.b.c.", "", "", false},
	} {
		p, op, ok := ParseTarget(tc.in)
		if p != tc.prefix || op != tc.op || ok != tc.ok {
			t.Errorf("ParseTarget(%q) = %q, %q, %v; want %q, %q, %v", tc.in, p, op, ok, tc.prefix, tc.op, tc.ok)
		}
	}
}

type input struct {
	Name       *string
	MaxResults *int64
	Items      []struct{ Key string }
	Start      *Timestamp
}

func TestDecode(t *testing.T) {
	for _, tc := range []struct{ body, wantErr string }{
		{``, ""},
		{`{}`, ""},
		{`{"Name":"x","MaxResults":5,"Items":[{"Key":"k"}],"Start":1700000000.5,"Unknown":{"a":[1]}}`, ""},
		{`{"Start":"2024-01-01T00:00:00Z"}`, ""},
		{`[]`, "SerializationException"},
		{`"x"`, "SerializationException"},
		{`{"Name":`, "SerializationException"},
		{`{"Name":5}`, "Name"},
		{`{"MaxResults":"5"}`, "MaxResults"},
		{`{"Items":{}}`, "Items"},
		{`{"Start":"yesterday"}`, "timestamp"},
		{`{"Start":1e400}`, "timestamp"},
		{`{} {}`, "after"},
		{`{"a":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, "deeply"},
	} {
		var v input
		err := Decode([]byte(tc.body), &v)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("Decode(%s) = %v; want nil", tc.body, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("Decode(%s) = %v; want an error containing %q", tc.body, err, tc.wantErr)
		case err != nil:
			if e, ok := err.(*Error); !ok || e.Code != "SerializationException" || e.Status != 400 {
				t.Errorf("Decode(%s) = %#v; want a SerializationException *Error", tc.body, err)
			}
		}
	}
}

func TestTimestampRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{time.Unix(1441139757, 497e6), "1441139757.497"},
		{time.Unix(1700000000, 0), "1700000000"},
	} {
		b, _ := NewTimestamp(tc.t).MarshalJSON()
		if string(b) != tc.want {
			t.Errorf("Marshal(%v) = %s; want %s", tc.t, b, tc.want)
		}
		var back Timestamp
		if err := back.UnmarshalJSON(b); err != nil || !back.Time().Equal(tc.t) {
			t.Errorf("Unmarshal(%s) = %v, %v; want %v", b, back.Time(), err, tc.t)
		}
	}
}

func TestReadBodyLimit(t *testing.T) {
	r := httptest.NewRequest("POST", "/", strings.NewReader(strings.Repeat("a", 11)))
	r.ContentLength = -1
	if _, err := ReadBody(r, 10); err == nil || err.(*Error).Status != http.StatusRequestEntityTooLarge {
		t.Errorf("ReadBody over the limit = %v; want 413", err)
	}
	r = httptest.NewRequest("POST", "/", strings.NewReader("0123456789"))
	if b, err := ReadBody(r, 10); err != nil || len(b) != 10 {
		t.Errorf("ReadBody at the limit = %q, %v", b, err)
	}
}

// TestErrorEnvelopeParsesInBotocore checks the envelope with botocore's own
// JSON 1.1 error parser, as the AWS CLI and boto3 will read it.
func TestErrorEnvelopeParsesInBotocore(t *testing.T) {
	w := httptest.NewRecorder()
	WriteError(w, "req-1", &Error{Code: "TrailNotFoundException", Message: `Unknown trail: "x" for the user: 1`})
	if w.Code != 400 || w.Header().Get("X-Amzn-ErrorType") != "TrailNotFoundException" || w.Header().Get("x-amzn-RequestId") != "req-1" {
		t.Fatalf("WriteError: status %d, headers %v", w.Code, w.Header())
	}
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed")
	}
	script := `
import sys, json
from botocore.parsers import JSONParser
from botocore.model import ServiceModel
body = sys.stdin.buffer.read()
resp = {"status_code": 400, "headers": {"x-amzn-requestid": "req-1", "x-amzn-errortype": "TrailNotFoundException"}, "body": body}
out = JSONParser().parse(resp, None)
print(out["Error"]["Code"] + "|" + out["Error"]["Message"] + "|" + out["ResponseMetadata"]["RequestId"])
`
	cmd := exec.Command("python3", "-c", script)
	cmd.Stdin = strings.NewReader(w.Body.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("botocore: %v\n%s", err, out)
	}
	if got, want := strings.TrimSpace(string(out)), `TrailNotFoundException|Unknown trail: "x" for the user: 1|req-1`; got != want {
		t.Errorf("botocore parsed %q; want %q", got, want)
	}
}

func TestNewRequestID(t *testing.T) {
	a, b := NewRequestID(), NewRequestID()
	if len(a) != 36 || a == b || a[14] != '4' {
		t.Errorf("NewRequestID = %q, %q", a, b)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"Name":"x","MaxResults":5,"Items":[{"Key":"k"}],"Start":1700000000.5}`))
	f.Add([]byte(`{"Start":"2024-01-01T00:00:00Z"}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var v input
		if err := Decode(b, &v); err != nil {
			if _, ok := err.(*Error); !ok {
				t.Errorf("Decode error %T is not an *Error", err)
			}
		}
	})
}

func FuzzParseTarget(f *testing.F) {
	f.Add("com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents")
	f.Fuzz(func(t *testing.T, s string) {
		if p, op, ok := ParseTarget(s); ok && (p == "" || op == "") {
			t.Errorf("ParseTarget(%q) ok with empty parts", s)
		}
	})
}
