package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/cairn-audit/cairn/internal/testwait"
)

// The hostile-tenant suite's edge classes (issue 11 items 4, 11 and 12):
// anonymous callers cannot make cairn read bodies, a body cannot change
// under a signature, and request JSON must be text.

const (
	aliceKey    = "AKIAALICE00000000001"
	aliceSecret = "alice-secret-key"
	importOp    = "CairnImport_20251101.ImportRecords"
	trailOp     = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101."
)

// edgeRequest is a request built to be sent by hand: its signature is
// over payload (a hash, UNSIGNED-PAYLOAD...) and it claims contentLength.
type edgeRequest struct {
	path, target  string
	contentLength int64
	headers       http.Header
}

// edgeTarget is where a request goes: an API target or the data plane.
type edgeTarget struct {
	name, path, target, service string
	limit                       int64
}

var edgeTargets = []edgeTarget{
	{"LookupEvents", "/", trailOp + "LookupEvents", "cloudtrail", 1 << 20},
	{"ImportRecords", "/", importOp, "cloudtrail", 8 << 20},
	{"PutAuditEvents", "/PutAuditEvents?channelArn=" + url.QueryEscape("arn:aws:cloudtrail:us-east-1:111111111111:channel/x"), "", "cloudtrail-data", 1 << 20},
}

// signed returns the header of a request to tg signed with key/secret
// over payload at time at; declare sets X-Amz-Content-Sha256 to payload.
func signed(t *testing.T, ts *testServer, tg edgeTarget, key, secret, service, payload string, declare bool, at time.Time, n int64) edgeRequest {
	t.Helper()
	r, err := http.NewRequest(http.MethodPost, ts.endpoint+tg.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/x-amz-json-1.1")
	if tg.target != "" {
		r.Header.Set("X-Amz-Target", tg.target)
	}
	if declare {
		r.Header.Set("X-Amz-Content-Sha256", payload)
	}
	if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: key, SecretAccessKey: secret},
		r, payload, service, "us-east-1", at); err != nil {
		t.Fatal(err)
	}
	return edgeRequest{path: tg.path, contentLength: n, headers: r.Header}
}

// sendHeader writes req's header and the first bytes of its body (none
// of the rest) on a new connection and returns the connection.
func sendHeader(t *testing.T, ts *testServer, req edgeRequest, first string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(ts.endpoint, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var b strings.Builder
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", req.path, strings.TrimPrefix(ts.endpoint, "http://"), req.contentLength)
	for k, vs := range req.headers {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatal(err)
	}
	// The body is written while the answer is read, as clients do: a
	// server refusing it early may close the connection under it.
	go io.WriteString(c, first)
	return c
}

// response reads the answer on c. The deadline only keeps a broken
// server from hanging the suite; the body it waits for never comes.
func response(t *testing.T, c net.Conn) (int, string) {
	t.Helper()
	c.SetReadDeadline(testwait.End(t))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer before the body was sent (the server waits for it): %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func wantError(t *testing.T, status int, body string, wantStatus int, code string) {
	t.Helper()
	var e struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || status != wantStatus || e.Type != code || e.Message == "" {
		t.Errorf("status %d, body %.300s; want %d with __type %s and a message", status, body, wantStatus, code)
	}
}

func hexHash(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// TestUnauthenticatedBodiesAreNotRead is item 4: a caller cairn cannot
// name (no signature, a malformed one, an unknown key, an expired or
// wrong signature over a declared hash, an unsigned or streaming payload,
// another service's scope) gets its AWS error from the header alone: the
// server answers although the 8 MiB body it announced never comes.
func TestUnauthenticatedBodiesAreNotRead(t *testing.T) {
	ts := startServer(t, fmt.Sprintf(twoAccounts, 90), "")
	const n = 8 << 20
	bodyHash := hexHash(make([]byte, n))
	now := time.Now()
	for _, tg := range edgeTargets {
		svc := tg.service
		for _, tc := range []struct {
			name   string
			req    func() edgeRequest
			status int
			code   string
		}{
			{"no authorization", func() edgeRequest {
				r := signed(t, ts, tg, aliceKey, aliceSecret, svc, bodyHash, false, now, n)
				r.headers.Del("Authorization")
				return r
			}, 403, "MissingAuthenticationTokenException"},
			{"malformed authorization", func() edgeRequest {
				r := signed(t, ts, tg, aliceKey, aliceSecret, svc, bodyHash, false, now, n)
				r.headers.Set("Authorization", "AWS4-HMAC-SHA256 nonsense")
				return r
			}, 400, "IncompleteSignatureException"},
			{"unknown key", func() edgeRequest {
				return signed(t, ts, tg, "AKIAUNKNOWN000000001", "x", svc, bodyHash, false, now, n)
			}, 403, "UnrecognizedClientException"},
			{"expired", func() edgeRequest {
				return signed(t, ts, tg, aliceKey, aliceSecret, svc, bodyHash, false, now.Add(-time.Hour), n)
			}, 403, "InvalidSignatureException"},
			{"wrong secret, declared hash", func() edgeRequest {
				return signed(t, ts, tg, aliceKey, "wrong", svc, bodyHash, true, now, n)
			}, 403, "InvalidSignatureException"},
			{"unsigned payload", func() edgeRequest {
				return signed(t, ts, tg, aliceKey, aliceSecret, svc, "UNSIGNED-PAYLOAD", true, now, n)
			}, 403, "InvalidSignatureException"},
			{"streaming payload", func() edgeRequest {
				return signed(t, ts, tg, aliceKey, aliceSecret, svc, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", true, now, n)
			}, 403, "InvalidSignatureException"},
			{"streaming unsigned trailer", func() edgeRequest {
				return signed(t, ts, tg, aliceKey, aliceSecret, svc, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", true, now, n)
			}, 403, "InvalidSignatureException"},
			{"s3 scope", func() edgeRequest {
				return signed(t, ts, tg, aliceKey, aliceSecret, "s3", "UNSIGNED-PAYLOAD", true, now, n)
			}, 403, "InvalidSignatureException"},
			{"signed, over the limit", func() edgeRequest {
				return signed(t, ts, tg, aliceKey, aliceSecret, svc, bodyHash, false, now, tg.limit+1)
			}, 413, "RequestEntityTooLargeException"},
		} {
			t.Run(tg.name+"/"+tc.name, func(t *testing.T) {
				c := sendHeader(t, ts, tc.req(), `{"Records":[`)
				status, body := response(t, c)
				wantError(t, status, body, tc.status, tc.code)
			})
		}
	}
}

// bigImport returns an ImportRecords body of alice's records just under
// 8 MiB, and how many records it holds.
func bigImport(t *testing.T) ([]byte, int) {
	t.Helper()
	const count = 1000
	pad := strings.Repeat("x", 7950)
	recs := make([]string, count)
	at := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	for i := range recs {
		recs[i] = fmt.Sprintf(`{"eventVersion":"1.08","eventTime":%q,"eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"us-east-1","eventID":"00000000-0000-4000-8000-%012d","readOnly":true,"eventType":"AwsApiCall","recipientAccountId":"111111111111","userIdentity":{"type":"IAMUser","accountId":"111111111111","userName":"alice"},"requestParameters":{"pad":%q}}`, at, i, pad)
	}
	b, err := json.Marshal(map[string][]string{"Records": recs})
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 8<<20 || len(b) < 8<<20-512<<10 {
		t.Fatalf("import body of %d bytes; want just under 8 MiB", len(b))
	}
	return b, count
}

// sendSigned sends body signed over the hash of signedBody (the body
// itself unless it is changed under the signature).
func sendSigned(t *testing.T, ts *testServer, tg edgeTarget, secret string, body, signedBody []byte, declare bool) (int, string) {
	t.Helper()
	req := signed(t, ts, tg, aliceKey, secret, tg.service, hexHash(signedBody), declare, time.Now(), int64(len(body)))
	c := sendHeader(t, ts, req, string(body))
	return response(t, c)
}

// TestSignedBodies is items 4 and 11 with the body sent: a signed 8 MiB
// import works with and without X-Amz-Content-Sha256 (botocore sends
// none); a wrong signature or a body changed under a right one is
// refused.
func TestSignedBodies(t *testing.T) {
	ts := startServer(t, fmt.Sprintf(twoAccounts, 90), "")
	imp := edgeTargets[1]
	body, count := bigImport(t)
	changed := []byte(strings.Replace(string(body), "GetObject", "PutObject", 1))
	for _, declare := range []bool{false, true} {
		name := "no header"
		if declare {
			name = "declared hash"
		}
		t.Run(name+"/wrong secret", func(t *testing.T) {
			status, out := sendSigned(t, ts, imp, "wrong", body, body, declare)
			wantError(t, status, out, 403, "InvalidSignatureException")
		})
		t.Run(name+"/body changed under the signature", func(t *testing.T) {
			status, out := sendSigned(t, ts, imp, aliceSecret, changed, body, declare)
			wantError(t, status, out, 403, "InvalidSignatureException")
		})
		t.Run(name+"/signed 8 MiB import", func(t *testing.T) {
			status, out := sendSigned(t, ts, imp, aliceSecret, body, body, declare)
			var res struct{ Inserted, Duplicates int }
			if err := json.Unmarshal([]byte(out), &res); status != 200 || err != nil || res.Inserted+res.Duplicates != count {
				t.Fatalf("status %d, body %.300s; want 200 with %d records inserted or duplicates", status, out, count)
			}
		})
	}
	// A LookupEvents body changed under a declared hash, the data plane
	// too.
	for _, tg := range []edgeTarget{edgeTargets[0], edgeTargets[2]} {
		t.Run(tg.name+"/body changed under a declared hash", func(t *testing.T) {
			status, out := sendSigned(t, ts, tg, aliceSecret, []byte(`{"MaxResults":5}`), []byte(`{"MaxResults":6}`), true)
			wantError(t, status, out, 403, "InvalidSignatureException")
		})
	}
}

// metric returns the value of a metric without labels from /metrics.
func metric(t *testing.T, ts *testServer, name string) string {
	t.Helper()
	return metricAt(t, ts.endpoint, name)
}

func metricAt(t *testing.T, endpoint, name string) string {
	t.Helper()
	resp, err := http.Get(endpoint + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return v
		}
	}
	return ""
}

// waitIngested waits until the server at endpoint has stored every record
// it acknowledged from its journal (ImportRecords, recorded write calls):
// LookupEvents sees them only then, within the journal's delay plus one
// append. It fails after a minute.
func waitIngested(t *testing.T, endpoint string) {
	t.Helper()
	for deadline := testwait.End(t); ; time.Sleep(10 * time.Millisecond) {
		v := metricAt(t, endpoint, "cairn_ingest_journal_pending_records")
		if v == "0" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cairn_ingest_journal_pending_records = %q at the test's deadline; want 0", v)
		}
	}
}

func waitForMetric(t *testing.T, ts *testServer, name, want string) {
	t.Helper()
	testwait.UntilNil(t, name+" = "+want, func() error {
		if got := metric(t, ts, name); got != want {
			return fmt.Errorf("%s = %s", name, got)
		}
		return nil
	})
}

// TestUnverifiedBodyBudget is item 4's budget: with 8 MiB of bodies being
// read before their signature can be checked, a further such request is
// answered ThrottlingException without its body being read; a request
// whose signature is verified from its header is not held back; once the
// body is gone the budget is free again.
func TestUnverifiedBodyBudget(t *testing.T) {
	ts := startServer(t, fmt.Sprintf(twoAccounts, 90)+"api:\n  max_unverified_body_mb: 8\n", "")
	imp, lookup := edgeTargets[1], edgeTargets[0]
	const n = 8 << 20
	// A slow client: 8 MiB announced, a few bytes sent.
	slow := sendHeader(t, ts, signed(t, ts, imp, aliceKey, aliceSecret, "cloudtrail", hexHash(make([]byte, n)), false, time.Now(), n), `{"Records":[`)
	waitForMetric(t, ts, "cairn_api_unverified_body_bytes", "8.388608e+06")

	small := []byte(`{"MaxResults":1}`)
	for range 3 {
		status, out := sendSigned(t, ts, lookup, aliceSecret, small, small, false)
		wantError(t, status, out, 400, "ThrottlingException")
		// An unknown key is refused for what it is, budget or not.
		c := sendHeader(t, ts, signed(t, ts, lookup, "AKIAUNKNOWN000000001", "x", "cloudtrail", hexHash(small), false, time.Now(), int64(len(small))), string(small))
		status, out = response(t, c)
		wantError(t, status, out, 403, "UnrecognizedClientException")
	}
	if got := metric(t, ts, "cairn_api_unverified_body_refusals_total"); got != "3" {
		t.Errorf("cairn_api_unverified_body_refusals_total = %s; want 3", got)
	}
	// Verified from its header: served.
	if status, out := sendSigned(t, ts, lookup, aliceSecret, small, small, true); status != 200 {
		t.Errorf("declared-hash LookupEvents: status %d, %.200s; want 200", status, out)
	}
	slow.Close()
	waitForMetric(t, ts, "cairn_api_unverified_body_bytes", "0")
	if status, out := sendSigned(t, ts, lookup, aliceSecret, small, small, false); status != 200 {
		t.Errorf("LookupEvents after the slow body went: status %d, %.200s; want 200", status, out)
	}
}

// TestRequestJSONMustBeText is item 12: invalid UTF-8, NUL (raw or
// \u0000) and unpaired surrogates get SerializationException on every
// door, signed correctly over the bad body.
func TestRequestJSONMustBeText(t *testing.T) {
	ts := startServer(t, fmt.Sprintf(twoAccounts, 90), "")
	doors := append([]edgeTarget{
		{"CreateTrail", "/", trailOp + "CreateTrail", "cloudtrail", 1 << 20},
		{"DescribeTrails", "/", trailOp + "DescribeTrails", "cloudtrail", 1 << 20},
	}, edgeTargets...)
	for _, tg := range doors {
		for _, tc := range []struct{ name, body string }{
			{"invalid byte", "{\"Name\":\"t\xff\"}"},
			{"truncated sequence", "{\"NextToken\":\"\xe6\x97\"}"},
			{"latin-1", "{\"Name\":\"caf\xe9\"}"},
			{"escaped nul", `{"Name":"a\u0000b"}`},
			{"escaped nul in a member name", `{"Na\u0000me":"a"}`},
			{"raw nul", "{\"Name\":\"a\x00b\"}"},
			{"nul in a list", `{"Records":["{}","\u0000"]}`},
			{"lone surrogate", `{"Name":"\ud800"}`},
			{"lone low surrogate", `{"LookupAttributes":[{"AttributeKey":"EventName","AttributeValue":"\udfff"}]}`},
		} {
			t.Run(tg.name+"/"+tc.name, func(t *testing.T) {
				status, out := sendSigned(t, ts, tg, aliceSecret, []byte(tc.body), []byte(tc.body), false)
				wantError(t, status, out, 400, "SerializationException")
			})
		}
	}
}
