package gateway

import (
	"bytes"
	"crypto/tls"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// cannedUpstream answers every request from a table keyed by method and
// path, so the gateway's records can be built without an upstream service.
type cannedUpstream map[string]cannedResponse

type cannedResponse struct {
	status int
	header map[string]string
	body   string
	err    error
}

func (u cannedUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	c, ok := u[r.Method+" "+r.URL.Path]
	if !ok {
		c = cannedResponse{status: 200, body: ""}
	}
	if c.err != nil {
		return nil, c.err
	}
	h := http.Header{}
	for k, v := range c.header {
		h.Set(k, v)
	}
	return &http.Response{StatusCode: c.status, Header: h, Body: io.NopCloser(strings.NewReader(c.body)),
		ContentLength: int64(len(c.body)), Request: r, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}, nil
}

func sigv4Auth(key, region, service string) string {
	return "AWS4-HMAC-SHA256 Credential=" + key + "/20260101/" + region + "/" + service + "/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"
}

var eventIDField = regexp.MustCompile(`"eventID":"[0-9a-f-]{36}"`)

// TestRecordsGolden builds the record of a table of calls through the
// gateway (against a canned upstream) and compares it, byte for byte, with
// testdata/records.golden.jsonl (go test -run RecordsGolden -update
// rewrites it). Event IDs are random and replaced before comparing.
func TestRecordsGolden(t *testing.T) {
	up := cannedUpstream{
		"GET /photos/cat.jpg": {status: 200, header: map[string]string{"X-Amz-Request-Id": "S3REQ1", "Content-Type": "image/jpeg"}, body: "jpeg"},
		"PUT /newbucket":      {status: 200, header: map[string]string{"X-Amz-Request-Id": "S3REQ2"}},
		"GET /photos/missing": {status: 404, header: map[string]string{"X-Amz-Request-Id": "S3REQ3", "Content-Type": "application/xml"},
			body: "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>"},
		"POST /ddb": {status: 200, header: map[string]string{"X-Amzn-Requestid": "DDBREQ1", "Content-Type": "application/x-amz-json-1.0"},
			body: `{"TableDescription":{"TableName":"t1","TableStatus":"CREATING","TableArn":"arn:aws:dynamodb:eu-west-1:111111111111:table/t1"}}`},
		"POST /iam": {status: 200, header: map[string]string{"X-Amzn-Requestid": "IAMREQ1", "Content-Type": "text/xml"},
			body: `<CreateUserResponse><CreateUserResult><User><UserName>bob</UserName><Arn>arn:aws:iam::111111111111:user/bob</Arn><UserId>AIDABOB</UserId><Path>/</Path></User></CreateUserResult></CreateUserResponse>`},
		"POST /sts": {status: 200, header: map[string]string{"X-Amzn-Requestid": "STSREQ1", "Content-Type": "text/xml"},
			body: `<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIATEMP0000000001</AccessKeyId><SecretAccessKey>s</SecretAccessKey><SessionToken>tok</SessionToken><Expiration>2026-01-01T01:00:00Z</Expiration></Credentials><AssumedRoleUser><AssumedRoleId>AROAROLE:sess</AssumedRoleId><Arn>arn:aws:sts::111111111111:assumed-role/admin/sess</Arn></AssumedRoleUser></AssumeRoleResult></AssumeRoleResponse>`},
		"POST /sqs-denied": {status: 400, header: map[string]string{"X-Amzn-Requestid": "SQSREQ1", "Content-Type": "application/x-amz-json-1.0"},
			body: `{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"The specified queue does not exist. ` + strings.Repeat("é", 600) + `"}`},
		"GET /down": {err: errors.New("connection refused")},
	}
	type req struct {
		name, method, target string
		header               map[string]string
		body                 string
		tls                  bool
		remote               string
	}
	alice := "AKIAALICE00000000001"
	calls := []req{
		{name: "s3-get-object-data", method: "GET", target: "http://s3.amazonaws.com/photos/cat.jpg",
			header: map[string]string{"Authorization": sigv4Auth(alice, "us-east-1", "s3"), "User-Agent": "aws-cli/2.15.0"}},
		{name: "s3-create-bucket-tls", method: "PUT", target: "https://s3.eu-west-1.amazonaws.com/newbucket", tls: true,
			header: map[string]string{"Authorization": sigv4Auth(alice, "eu-west-1", "s3"), "User-Agent": "Boto3/1.34"}},
		{name: "s3-error", method: "GET", target: "http://s3.amazonaws.com/photos/missing",
			header: map[string]string{"Authorization": sigv4Auth(alice, "us-east-1", "s3")}},
		{name: "dynamodb-create-table-json", method: "POST", target: "http://dynamodb.eu-west-1.amazonaws.com/ddb",
			header: map[string]string{"Authorization": sigv4Auth(alice, "eu-west-1", "dynamodb"), "X-Amz-Target": "DynamoDB_20120810.CreateTable",
				"Content-Type": "application/x-amz-json-1.0", "User-Agent": strings.Repeat("ü", 700)},
			body: `{"TableName":"t1","AttributeDefinitions":[{"AttributeName":"k","AttributeType":"S"}],"KeySchema":[{"AttributeName":"k","KeyType":"HASH"}],"BillingMode":"PAY_PER_REQUEST"}`},
		{name: "iam-create-user-query", method: "POST", target: "http://iam.amazonaws.com/iam",
			header: map[string]string{"Authorization": sigv4Auth(alice, "us-east-1", "iam"), "Content-Type": "application/x-www-form-urlencoded"},
			body:   "Action=CreateUser&Version=2010-05-08&UserName=bob"},
		{name: "sts-assume-role", method: "POST", target: "http://sts.amazonaws.com/sts",
			header: map[string]string{"Authorization": sigv4Auth(alice, "us-east-1", "sts"), "Content-Type": "application/x-www-form-urlencoded"},
			body:   "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A111111111111%3Arole%2Fadmin&RoleSessionName=sess"},
		{name: "assumed-role-call", method: "GET", target: "http://s3.amazonaws.com/photos/cat.jpg",
			header: map[string]string{"Authorization": sigv4Auth("ASIATEMP0000000001", "us-east-1", "s3")}},
		{name: "sqs-error-long-message", method: "POST", target: "http://sqs.us-east-1.amazonaws.com/sqs-denied",
			header: map[string]string{"Authorization": sigv4Auth(alice, "us-east-1", "sqs"), "X-Amz-Target": "AmazonSQS.GetQueueUrl",
				"Content-Type": "application/x-amz-json-1.0"},
			body: `{"QueueName":"nope"}`},
		{name: "unknown-key-unmatched", method: "DELETE", target: "http://example.com/some/path",
			header: map[string]string{"Authorization": sigv4Auth("AKIAUNKNOWN000000000", "us-east-1", "nosuchservice")}},
		{name: "unsigned", method: "GET", target: "http://s3.amazonaws.com/photos/cat.jpg", remote: "10.1.2.3:5555"},
		{name: "upstream-down", method: "GET", target: "http://s3.amazonaws.com/down",
			header: map[string]string{"Authorization": sigv4Auth(alice, "us-east-1", "s3")}},
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rec := &collector{}
	gw, err := New(Config{Upstreams: map[string]*url.URL{"default": {Scheme: "http", Host: "upstream.invalid"}}, Principals: testPrincipals(t),
		Recorder: rec, DefaultAccount: "111111111111", Transport: up, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	var got bytes.Buffer
	for _, c := range calls {
		r := httptest.NewRequest(c.method, c.target, strings.NewReader(c.body))
		if c.body == "" {
			r.Body = http.NoBody
			r.ContentLength = 0
		}
		for k, v := range c.header {
			r.Header.Set(k, v)
		}
		if c.remote != "" {
			r.RemoteAddr = c.remote
		}
		if c.tls {
			r.TLS = &tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256}
		} else {
			r.TLS = nil
		}
		n := rec.mark()
		func() {
			defer func() { _ = recover() }()
			gw.ServeHTTP(httptest.NewRecorder(), r)
		}()
		rec.mu.Lock()
		if len(rec.recs) != n+1 {
			rec.mu.Unlock()
			t.Fatalf("%s: %d records; want 1", c.name, len(rec.recs)-n)
		}
		raw := rec.recs[n].Raw
		rec.mu.Unlock()
		got.WriteString(c.name + "\t")
		got.Write(eventIDField.ReplaceAll(raw, []byte(`"eventID":"00000000-0000-4000-8000-000000000000"`)))
		got.WriteByte('\n')
	}
	compareGolden(t, filepath.Join("testdata", "records.golden.jsonl"), got.Bytes())
}

// compareGolden compares got with the golden file at path, line by line,
// or rewrites the file with -update.
func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -run %s -update writes it)", err, t.Name())
	}
	gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
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
