package apiserver

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
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
		query   string // the URL's query
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
			body: []byte(`{"AuditEvents":[{"Id":"1","EventData":"{}"}]}`)}, tls: true, ua: "x" + strings.Repeat("€", 400),
			query: "?channelArn=" + url.QueryEscape("arn:aws:cloudtrail:eu-west-1:123456789012:channel/<c>") + "&externalId=secret"},
		{name: "data-event-without-channel", c: call{requestID: "req-8", caller: alice, op: "PutAuditEvents", data: true,
			body: []byte(`{"auditEvents":[{"id":"1","eventData":"{}"}]}`)},
			errResp: &awsjson.Error{Code: "ValidationException", Message: "channelArn is required.", Status: 400}},
		{name: "unknown-op", c: call{requestID: "req-6", caller: alice, op: ""},
			errResp: &awsjson.Error{Code: "UnknownOperationException", Message: "Missing or malformed X-Amz-Target header.", Status: 400}},
		{name: "tls-readonly-lookup", c: call{requestID: "req-7", caller: alice, op: "LookupEvents", readOnly: true,
			body: []byte(`{"MaxResults":5,"LookupAttributes":[{"AttributeKey":"EventName","AttributeValue":"CreateTrail"}]}`)}, tls: true},
	}
	var got bytes.Buffer
	for _, r := range rows {
		req := httptest.NewRequest(http.MethodPost, "https://cloudtrail.eu-west-1.amazonaws.com/"+r.query, nil)
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

// lowerMembersByToken is lowerMembers as it was with encoding/json's Token
// API: FuzzLowerMembers holds the jsontext version to its bytes.
func lowerMembersByToken(in []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(in))
	dec.UseNumber()
	var out bytes.Buffer
	if err := copyValueByToken(dec, &out, 0); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data")
	}
	return out.Bytes(), nil
}

func copyValueByToken(dec *json.Decoder, out *bytes.Buffer, depth int) error {
	if depth > maxDepth {
		return errors.New("nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	writeJSON := func(v any) {
		b, _ := json.Marshal(v)
		out.Write(b)
	}
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			out.WriteByte('{')
			for first := true; dec.More(); first = false {
				if !first {
					out.WriteByte(',')
				}
				kt, err := dec.Token()
				if err != nil {
					return err
				}
				k, _ := kt.(string)
				writeJSON(lowerFirst(k))
				out.WriteByte(':')
				if err := copyValueByToken(dec, out, depth+1); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil {
				return err
			}
			out.WriteByte('}')
		case '[':
			out.WriteByte('[')
			for first := true; dec.More(); first = false {
				if !first {
					out.WriteByte(',')
				}
				if err := copyValueByToken(dec, out, depth+1); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil {
				return err
			}
			out.WriteByte(']')
		}
	case json.Number:
		out.WriteString(v.String())
	default:
		writeJSON(v)
	}
	return nil
}

// FuzzLowerMembers: on every body CheckText passes (as a call's body must
// before it is recorded), lowerMembers gives the bytes the Token-API
// version gave, or fails where it failed.
func FuzzLowerMembers(f *testing.F) {
	for _, s := range []string{`{"TrailName":"t","Tags":[{"Key":"K","Value":"<&>"}]}`, `[1,2.50,-0,1e9,true,null]`,
		`{"A":{"B":{"C":"\u00e9\u2028\n\t\u0001"}}}`, `"Str"`, `{"Élan":1,"a":2,"a":3}`, `{"a":1} x`, `{"a":`, `[[[[]]]]`,
		`{"auditEvents":[{"id":"1","eventData":"{\"version\":\"1\"}"}]}`, `{"\/":"\/\"\\"}`, ` {} `, `{"a":1}{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if awsjson.CheckText(b) != nil {
			return
		}
		got, gerr := lowerMembers(b)
		want, werr := lowerMembersByToken(b)
		if (gerr == nil) != (werr == nil) || !bytes.Equal(got, want) {
			t.Fatalf("lowerMembers(%q) = %q, %v; by token: %q, %v", b, got, gerr, want, werr)
		}
	})
}

func BenchmarkLowerMembers(b *testing.B) {
	// A PutAuditEvents body of 100 events, as BenchmarkPutAuditEvents sends.
	ev := `{"version":"1.0","userIdentity":{"type":"CustomUser","principalId":"alice","details":{"team":"a"}},"eventSource":"app.example.com","eventName":"Login","eventTime":"2024-01-02T03:04:05Z","UID":"u-1","sourceIPAddress":"10.0.0.1","recipientAccountId":"111111111111","requestParameters":{"user":"alice","attempt":1}}`
	q, _ := json.Marshal(ev)
	body := []byte(`{"auditEvents":[` + strings.Repeat(`{"id":"e1","eventData":`+string(q)+`},`, 99) + `{"id":"e1","eventData":` + string(q) + `}]}`)
	for _, c := range []struct {
		name  string
		lower func([]byte) ([]byte, error)
	}{{"jsontext", lowerMembers}, {"Token", lowerMembersByToken}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := c.lower(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A data call's recorded channel is bounded by its encoded size: an ARN
// of characters JSON escapes (a caller's, refused or not) is left out
// rather than recorded six times its size.
func TestDataParametersBounded(t *testing.T) {
	q := func(arn string) url.Values { return url.Values{"channelArn": {arn}, "externalId": {"secret"}} }
	if got := string(dataParameters("PutAuditEvents", q("arn:aws:cloudtrail:us-east-1:123456789012:channel/c\""))); got != `{"channelArn":"arn:aws:cloudtrail:us-east-1:123456789012:channel/c\""}` {
		t.Errorf("dataParameters = %s", got)
	}
	if got := dataParameters("PutAuditEvents", q(strings.Repeat("<", maxParams/6))); got != nil {
		t.Errorf("an ARN of %d escaped bytes recorded (%d bytes); want null", maxParams, len(got))
	}
	if got := dataParameters("PutAuditEvents", q(strings.Repeat("a", maxParams/2))); len(got) != maxParams/2+len(`{"channelArn":""}`) {
		t.Errorf("an ARN of %d plain bytes recorded as %d bytes; want it whole", maxParams/2, len(got))
	}
	if got := dataParameters("ListChannels", q("x")); got != nil {
		t.Errorf("another operation's parameters = %s; want null", got)
	}
}
