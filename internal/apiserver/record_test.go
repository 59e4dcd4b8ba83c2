package apiserver

import (
	"bytes"
	"crypto/tls"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/awsjson"
	"github.com/cairn-audit/cairn/internal/clientaddr"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// TestEventGolden builds the record of a table of calls (Server.event) and
// compares it, byte for byte, with testdata/events.golden.jsonl (go test
// -run EventGolden -update rewrites it).
func TestEventGolden(t *testing.T) {
	s := New(Config{NewID: func() string { return "11111111-2222-4333-8444-555555555555" }})
	alice := Caller{Principal: audit.Principal{AccountID: "123456789012", UserName: "alice", ARN: "arn:aws:iam::123456789012:user/alice",
		PrincipalID: "AIDAALICE", AccessKeyID: "AKIAALICE", Region: "eu-west-1"}}
	start := time.Date(2026, 3, 4, 5, 6, 7, 890, time.UTC)
	type row struct {
		name    string
		c       call
		ua      string
		remote  string
		tls     bool
		errResp error
	}
	rows := []row{
		{name: "write-success", c: call{requestID: "req-1", caller: alice, op: "CreateTrail",
			body: []byte(`{"Name":"t","S3BucketName":"b","IsMultiRegionTrail":true}`), responseElements: []byte(`{"name":"t","trailARN":"arn"}`)},
			ua: "aws-cli/2.15.0 Python/3.11", remote: "198.51.100.7:443"},
		{name: "read-only", c: call{requestID: "req-2", caller: alice, op: "DescribeTrails", readOnly: true, body: []byte(`{}`),
			responseElements: []byte(`{"ignored":true}`)}, ua: "Boto3/1.34", remote: "[2001:db8::1]:8443"},
		{name: "write-error", c: call{requestID: "req-3", caller: alice, op: "DeleteTrail", body: []byte(`{"Name":"missing"}`),
			responseElements: []byte(`{"x":1}`)}, remote: "no-port",
			errResp: &awsjson.Error{Code: "TrailNotFoundException", Message: "Unknown trail: missing for the user: 123456789012", Status: 400}},
		{name: "long-error", c: call{requestID: "req-4", caller: alice, op: "PutEventSelectors", body: []byte(`not json`)},
			errResp: &awsjson.Error{Code: strings.Repeat("C", 1100), Message: "x" + strings.Repeat("é", 600), Status: 400}},
		{name: "data-event", c: call{requestID: "req-5", caller: alice, op: "PutAuditEvents", data: true,
			body: []byte(`{"AuditEvents":[{"Id":"1","EventData":"{}"}]}`)}, tls: true, ua: "x" + strings.Repeat("€", 400)},
		{name: "unknown-op", c: call{requestID: "req-6", caller: alice, op: ""},
			errResp: &awsjson.Error{Code: "UnknownOperationException", Message: "Missing or malformed X-Amz-Target header.", Status: 400}},
		{name: "tls-readonly-lookup", c: call{requestID: "req-7", caller: alice, op: "LookupEvents", readOnly: true,
			body: []byte(`{"MaxResults":5,"LookupAttributes":[{"AttributeKey":"EventName","AttributeValue":"CreateTrail"}]}`)}, tls: true},
	}
	var got bytes.Buffer
	for _, r := range rows {
		req := httptest.NewRequest(http.MethodPost, "https://cloudtrail.eu-west-1.amazonaws.com/", nil)
		req.Header.Set("User-Agent", r.ua)
		if r.ua == "" {
			req.Header.Del("User-Agent")
		}
		if r.remote != "" {
			req.RemoteAddr = r.remote
		}
		req.TLS = nil
		if r.tls {
			req.TLS = &tls.ConnectionState{Version: tls.VersionTLS12, CipherSuite: tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
		}
		c := r.c
		c.r, c.start, c.source = req, start, clientaddr.Trusted(nil).Of(req).IP
		raw, err := s.event(&c, r.errResp).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got.WriteString(r.name + "\t")
		got.Write(raw)
		got.WriteByte('\n')
	}
	path := filepath.Join("testdata", "events.golden.jsonl")
	if *update {
		if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -run EventGolden -update writes it)", err)
	}
	gl, wl := strings.Split(got.String(), "\n"), strings.Split(string(want), "\n")
	for i := range max(len(gl), len(wl)) {
		var g, w string
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if g != w {
			t.Errorf("line %d:\n got %s\nwant %s", i+1, g, w)
		}
	}
}
