package audit

import (
	"crypto/tls"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestCallRecord(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 999_000_000, time.FixedZone("CET", 3600))
	base := Call{Identity: Principal{AccountID: "111111111111", UserName: "u", ARN: "arn:aws:iam::111111111111:user/u",
		PrincipalID: "AIDA", AccessKeyID: "AKIA"}.Identity(), Account: "111111111111", Time: at,
		Source: "cloudtrail.amazonaws.com", Name: "CreateTrail", Region: "eu-west-1", SourceIP: "192.0.2.1", UserAgent: "ua",
		RequestParameters: json.RawMessage(`{"name":"t"}`), ResponseElements: json.RawMessage(`{"name":"t"}`),
		RequestID: "r", EventID: "e"}
	for _, c := range []struct {
		name string
		edit func(*Call)
		want string
	}{
		{"write", func(*Call) {},
			`{"eventVersion":"1.11","userIdentity":{"type":"IAMUser","principalId":"AIDA","arn":"arn:aws:iam::111111111111:user/u","accountId":"111111111111","accessKeyId":"AKIA","userName":"u"},"eventTime":"2026-01-02T02:04:05Z","eventSource":"cloudtrail.amazonaws.com","eventName":"CreateTrail","awsRegion":"eu-west-1","sourceIPAddress":"192.0.2.1","userAgent":"ua","requestParameters":{"name":"t"},"responseElements":{"name":"t"},"requestID":"r","eventID":"e","readOnly":false,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"111111111111","eventCategory":"Management"}`},
		{"read-only keeps the responseElements its edge gives (STS AssumeRole)", func(c *Call) { c.ReadOnly = true },
			`{"eventVersion":"1.11","userIdentity":{"type":"IAMUser","principalId":"AIDA","arn":"arn:aws:iam::111111111111:user/u","accountId":"111111111111","accessKeyId":"AKIA","userName":"u"},"eventTime":"2026-01-02T02:04:05Z","eventSource":"cloudtrail.amazonaws.com","eventName":"CreateTrail","awsRegion":"eu-west-1","sourceIPAddress":"192.0.2.1","userAgent":"ua","requestParameters":{"name":"t"},"responseElements":{"name":"t"},"requestID":"r","eventID":"e","readOnly":true,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"111111111111","eventCategory":"Management"}`},
		{"error drops responseElements", func(c *Call) { c.ErrorCode, c.ErrorMessage = "TrailNotFoundException", "no" },
			`{"eventVersion":"1.11","userIdentity":{"type":"IAMUser","principalId":"AIDA","arn":"arn:aws:iam::111111111111:user/u","accountId":"111111111111","accessKeyId":"AKIA","userName":"u"},"eventTime":"2026-01-02T02:04:05Z","eventSource":"cloudtrail.amazonaws.com","eventName":"CreateTrail","awsRegion":"eu-west-1","sourceIPAddress":"192.0.2.1","userAgent":"ua","errorCode":"TrailNotFoundException","errorMessage":"no","requestParameters":{"name":"t"},"responseElements":null,"requestID":"r","eventID":"e","readOnly":false,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"111111111111","eventCategory":"Management"}`},
		{"data event, unknown operation, no identity, TLS, resources", func(c *Call) {
			c.Data, c.Name, c.Identity, c.SourceIP, c.UserAgent = true, "", nil, "", ""
			c.RequestParameters, c.ResponseElements = nil, nil
			c.AdditionalEventData = json.RawMessage(`{"x":1}`)
			c.APIVersion = "2013-11-01"
			c.Resources = []EventResource{{Type: "AWS::S3::Object", ARN: "arn:aws:s3:::b/k"}}
			c.TLS = &CallTLS{Version: 0x0304, CipherSuite: "TLS_AES_128_GCM_SHA256", Host: "h"}
		},
			`{"eventVersion":"1.11","eventTime":"2026-01-02T02:04:05Z","eventSource":"cloudtrail.amazonaws.com","eventName":"UnknownOperation","awsRegion":"eu-west-1","requestParameters":null,"responseElements":null,"additionalEventData":{"x":1},"requestID":"r","eventID":"e","readOnly":false,"resources":[{"type":"AWS::S3::Object","ARN":"arn:aws:s3:::b/k"}],"eventType":"AwsApiCall","apiVersion":"2013-11-01","managementEvent":false,"recipientAccountId":"111111111111","eventCategory":"Data","tlsDetails":{"tlsVersion":"TLSv1.3","cipherSuite":"TLS_AES_128_GCM_SHA256","clientProvidedHostHeader":"h"}}`},
	} {
		call := base
		c.edit(&call)
		got, err := CallRecord(call).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != c.want {
			t.Errorf("%s: CallRecord =\n%s\nwant\n%s", c.name, got, c.want)
		}
	}
}

// TestCallRecordLimits: client-supplied fields are cut to their limits at a
// character boundary, keeping every whole character that fits.
func TestCallRecordLimits(t *testing.T) {
	for _, c := range []struct {
		field string
		limit int
		set   func(*Call, string)
		get   func(*Event) string
	}{
		{"userAgent", 1024, func(c *Call, s string) { c.UserAgent = s }, func(e *Event) string { return e.UserAgent }},
		{"errorCode", 1024, func(c *Call, s string) { c.ErrorCode = s }, func(e *Event) string { return e.ErrorCode }},
		{"errorMessage", 1024, func(c *Call, s string) { c.ErrorMessage = s }, func(e *Event) string { return e.ErrorMessage }},
		{"requestID", 256, func(c *Call, s string) { c.RequestID = s }, func(e *Event) string { return e.RequestID }},
	} {
		for _, in := range []struct {
			s    string
			want int // bytes kept
		}{
			{strings.Repeat("a", c.limit), c.limit},
			{strings.Repeat("a", c.limit+1), c.limit},
			{strings.Repeat("é", c.limit), c.limit},                       // the cut falls after a whole é: kept
			{"x" + strings.Repeat("é", c.limit), c.limit - 1},             // the cut falls inside é: dropped
			{"x" + strings.Repeat("€", c.limit), c.limit - (c.limit-1)%3}, // whole €s only
		} {
			var call Call
			c.set(&call, in.s)
			got := c.get(CallRecord(call))
			if len(got) != in.want || !utf8.ValidString(got) || !strings.HasPrefix(in.s, got) {
				t.Errorf("%s of %d bytes: kept %d bytes (valid %v); want the %d-byte prefix", c.field, len(in.s), len(got), utf8.ValidString(got), in.want)
			}
		}
	}
}

func TestTLSVersionName(t *testing.T) {
	for v, want := range map[uint16]string{0x0304: "TLSv1.3", 0x0303: "TLSv1.2", 0x0302: "TLSv1.1", 0x0301: "TLSv1", 0x0300: "SSLv3", 0x7f17: "0x7F17"} {
		if got := TLSVersionName(v); got != want {
			t.Errorf("TLSVersionName(%#x) = %q; want %q", v, got, want)
		}
	}
}

// TestCipherSuiteName: cipher suites as the real records of testdata/real
// name them in tlsDetails.cipherSuite and S3's CipherSuite
// (ECDHE-RSA-AES128-GCM-SHA256 ×2,235, TLS_AES_128_GCM_SHA256 ×621,
// ECDHE-RSA-AES128-SHA ×10, TLS_AES_256_GCM_SHA384 ×5,
// ECDHE-RSA-AES256-GCM-SHA384 ×3).
func TestCipherSuiteName(t *testing.T) {
	for id, want := range map[uint16]string{
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: "ECDHE-RSA-AES128-GCM-SHA256",
		tls.TLS_AES_128_GCM_SHA256:                "TLS_AES_128_GCM_SHA256",
		tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA:    "ECDHE-RSA-AES128-SHA",
		tls.TLS_AES_256_GCM_SHA384:                "TLS_AES_256_GCM_SHA384",
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: "ECDHE-RSA-AES256-GCM-SHA384",
	} {
		if got := CipherSuiteName(id); got != want {
			t.Errorf("CipherSuiteName(%#x) = %q; want %q", id, got, want)
		}
	}
}
