package sigv4

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const (
	akid   = "AKIDEXAMPLE"
	secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
)

func verifier(now time.Time) *Verifier {
	return &Verifier{
		Secret: func(id string) (string, bool) { return secret, id == akid },
		Now:    func() time.Time { return now },
	}
}

// TestGetVanilla is the get-vanilla case of AWS's published SigV4 test suite.
func TestGetVanilla(t *testing.T) {
	r := httptest.NewRequest("GET", "http://example.amazonaws.com/", nil)
	r.Header.Set("X-Amz-Date", "20150830T123600Z")
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
	res, err := verifier(time.Date(2015, 8, 30, 12, 40, 0, 0, time.UTC)).Verify(r, nil)
	if err != nil {
		t.Fatalf("Verify(get-vanilla) = %v", err)
	}
	if res.AccessKeyID != akid || res.Region != "us-east-1" || res.Service != "service" {
		t.Errorf("Verify = %+v", res)
	}
}

func hashOf(b string) string {
	h := sha256.Sum256([]byte(b))
	return hex.EncodeToString(h[:])
}

func TestSDKRoundTrips(t *testing.T) {
	now := time.Now().UTC()
	signer := v4.NewSigner()
	creds := aws.Credentials{AccessKeyID: akid, SecretAccessKey: secret, SessionToken: "tok"}
	for _, tc := range []struct {
		name, service, url, body string
		presign                  bool
	}{
		{"cloudtrail json", "cloudtrail", "http://127.0.0.1:4579/", `{"MaxResults":5}`, false},
		{"odd path and query", "cloudtrail", "http://h/a%20b/c~d?b=2&a=1&a=0&sp=x%20y&star=*&empty=", `{}`, false},
		{"s3 object", "s3", "http://h/bucket/key%20with%2Fslash+plus?tagging=", "payload", false},
		{"s3 presigned", "s3", "http://h/bucket/key?x-id=GetObject&X-Amz-Expires=900", "", true},
		{"cloudtrail presigned", "cloudtrail", "http://h/?Action=LookupEvents&X-Amz-Expires=300", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := http.NewRequest("POST", tc.url, strings.NewReader(tc.body))
			r.Header.Set("Content-Type", "application/x-amz-json-1.1")
			r.Header.Set("X-Amz-Target", "CloudTrail_20131101.LookupEvents")
			payload := hashOf(tc.body)
			signer := signer
			if tc.service == "s3" {
				// As the S3 client configures it: S3 paths are encoded once.
				signer = v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
			}
			if tc.presign {
				r.Method = "GET"
				payload = UnsignedPayload
				if tc.service != "s3" {
					payload = hashOf("")
				}
				u, _, err := signer.PresignHTTP(context.Background(), creds, r, payload, tc.service, "eu-west-3", now)
				if err != nil {
					t.Fatal(err)
				}
				r, _ = http.NewRequest("GET", u, nil)
				r.Header.Set("Content-Type", "application/x-amz-json-1.1")
				r.Header.Set("X-Amz-Target", "CloudTrail_20131101.LookupEvents")
			} else if err := signer.SignHTTP(context.Background(), creds, r, payload, tc.service, "eu-west-3", now); err != nil {
				t.Fatal(err)
			}
			// What the server sees.
			srv := serverSide(t, r)
			body := tc.body
			if tc.presign {
				body = ""
			}
			res, err := verifier(now.Add(time.Minute)).Verify(srv, []byte(body))
			if err != nil {
				t.Fatalf("Verify = %v", err)
			}
			if res.Region != "eu-west-3" || res.Service != tc.service || res.SessionToken != "tok" || res.Presigned != tc.presign {
				t.Errorf("Verify = %+v", res)
			}
			// One changed byte of the body breaks a signed payload.
			if !tc.presign && body != "" {
				if _, err := verifier(now).Verify(serverSide(t, r), []byte(body+" ")); err == nil {
					t.Error("Verify accepted a changed body")
				}
			}
		})
	}
}

// serverSide turns a client request into what net/http hands a handler.
func serverSide(t *testing.T, r *http.Request) *http.Request {
	t.Helper()
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { got = req }))
	defer srv.Close()
	r2 := r.Clone(context.Background())
	if r.GetBody != nil {
		r2.Body, _ = r.GetBody()
	}
	r2.URL.Host = strings.TrimPrefix(srv.URL, "http://")
	r2.RequestURI = ""
	host := r.Host
	if host == "" {
		host = r.URL.Host
	}
	r2.Host = host
	resp, err := http.DefaultClient.Do(r2)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return got
}

func TestErrors(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 10, 0, 0, time.UTC)
	sign := func(r *http.Request, at time.Time, key string) {
		v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: key, SecretAccessKey: secret},
			r, hashOf(""), "cloudtrail", "us-east-1", at)
	}
	// signPayload signs r as a client declaring payload as its hash.
	signPayload := func(r *http.Request, service, payload string) {
		r.Header.Set("X-Amz-Content-Sha256", payload)
		v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: akid, SecretAccessKey: secret},
			r, payload, service, "us-east-1", now)
	}
	for _, tc := range []struct {
		name  string
		setup func(r *http.Request)
		code  string
		msg   string
	}{
		{"no auth", func(r *http.Request) {}, "MissingAuthenticationTokenException", "Missing Authentication Token"},
		{"other algorithm", func(r *http.Request) { r.Header.Set("Authorization", "AWS4-ECDSA-P256-SHA256 Credential=x") }, "IncompleteSignatureException", "algorithm"},
		{"basic auth", func(r *http.Request) { r.Header.Set("Authorization", "Basic Zm9vOmJhcg==") }, "IncompleteSignatureException", "Credential"},
		{"no signature", func(r *http.Request) {
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/cloudtrail/aws4_request, SignedHeaders=host")
			r.Header.Set("X-Amz-Date", "20240101T000500Z")
		}, "IncompleteSignatureException", "'Signature'"},
		{"bad scope", func(r *http.Request) {
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1, SignedHeaders=host, Signature=00")
			r.Header.Set("X-Amz-Date", "20240101T000500Z")
		}, "IncompleteSignatureException", "scoped"},
		{"no date", func(r *http.Request) {
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/cloudtrail/aws4_request, SignedHeaders=host, Signature=00")
		}, "IncompleteSignatureException", "X-Amz-Date"},
		{"scope date mismatch", func(r *http.Request) {
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231231/us-east-1/cloudtrail/aws4_request, SignedHeaders=host, Signature=00")
			r.Header.Set("X-Amz-Date", "20240101T000500Z")
		}, "InvalidSignatureException", "Date in Credential scope"},
		{"unknown key", func(r *http.Request) { sign(r, now, "AKIANOBODY") }, "UnrecognizedClientException", "security token"},
		{"expired", func(r *http.Request) { sign(r, now.Add(-16*time.Minute), akid) }, "InvalidSignatureException", "Signature expired: 20231231T235400Z is now earlier than 20231231T235500Z (20240101T001000Z - 15 min.)"},
		{"future", func(r *http.Request) { sign(r, now.Add(16*time.Minute), akid) }, "InvalidSignatureException", "not yet current"},
		{"wrong secret", func(r *http.Request) {
			v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: akid, SecretAccessKey: "nope"}, r, hashOf(""), "cloudtrail", "us-east-1", now)
		}, "InvalidSignatureException", "does not match"},
		// Item 11 of issue 11: the JSON services sign the body's hash.
		{"content hash mismatch", func(r *http.Request) { sign(r, now, akid); r.Header.Set("X-Amz-Content-Sha256", hashOf("x")) }, "InvalidSignatureException", "does not match"},
		{"signed content hash mismatch", func(r *http.Request) { signPayload(r, "cloudtrail", hashOf("x")) }, "InvalidSignatureException", "does not match"},
		{"unsigned payload", func(r *http.Request) { signPayload(r, "cloudtrail", UnsignedPayload) }, "InvalidSignatureException", "does not match"},
		{"unsigned payload, cloudtrail-data", func(r *http.Request) { signPayload(r, "cloudtrail-data", UnsignedPayload) }, "InvalidSignatureException", "does not match"},
		{"streaming payload", func(r *http.Request) { signPayload(r, "cloudtrail", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD") }, "InvalidSignatureException", "does not match"},
		{"streaming unsigned trailer", func(r *http.Request) { signPayload(r, "cloudtrail", "STREAMING-UNSIGNED-PAYLOAD-TRAILER") }, "InvalidSignatureException", "does not match"},
		{"unsigned header after signing", func(r *http.Request) { sign(r, now, akid); r.Header.Set("X-Amz-Content-Sha256", UnsignedPayload) }, "InvalidSignatureException", "does not match"},
		{"s3 content hash mismatch", func(r *http.Request) { signPayload(r, "s3", hashOf("x")) }, "XAmzContentSHA256Mismatch", "x-amz-content-sha256"},
		{"presigned expired", func(r *http.Request) {
			u, _, _ := v4.NewSigner().PresignHTTP(context.Background(), aws.Credentials{AccessKeyID: akid, SecretAccessKey: secret},
				httptest.NewRequest("GET", "http://h/?X-Amz-Expires=60", nil), hashOf(""), "cloudtrail", "us-east-1", now.Add(-2*time.Minute))
			r.URL, _ = r.URL.Parse(u)
		}, "InvalidSignatureException", "Signature expired"},
		{"presigned bad expiry", func(r *http.Request) {
			r.URL.RawQuery = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20240101%2Fus-east-1%2Fcloudtrail%2Faws4_request&X-Amz-Date=20240101T000500Z&X-Amz-SignedHeaders=host&X-Amz-Signature=00&X-Amz-Expires=9999999"
		}, "IncompleteSignatureException", "X-Amz-Expires"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://h/", nil)
			tc.setup(r)
			_, err := verifier(now).Verify(r, nil)
			e, ok := err.(*Error)
			if !ok || e.Code != tc.code || !strings.Contains(e.Message, tc.msg) {
				t.Errorf("Verify = %v; want %s containing %q", err, tc.code, tc.msg)
			}
			// VerifyHeader gives the same error, or none when only the
			// body can tell.
			if _, err := verifier(now).VerifyHeader(r); err != nil && err.Error() != e.Error() {
				t.Errorf("VerifyHeader = %v; want nil or %v", err, e)
			}
		})
	}
}

// TestVerifyHeader: what can be refused before the body is read is, and
// what VerifyHeader passes as verified Verify still checks against the
// body.
func TestVerifyHeader(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 10, 0, 0, time.UTC)
	const body = `{"Records":[]}`
	sign := func(service, key, sec, payload string, header bool) *http.Request {
		r := httptest.NewRequest("POST", "http://h/", strings.NewReader(body))
		if header {
			r.Header.Set("X-Amz-Content-Sha256", payload)
		}
		v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: key, SecretAccessKey: sec}, r, payload, service, "us-east-1", now)
		return r
	}
	for _, tc := range []struct {
		name     string
		r        *http.Request
		verified bool
		code     string // VerifyHeader's error; "" for none
		bodyCode string // Verify's error with the body; "" for none
	}{
		{"declared hash", sign("cloudtrail", akid, secret, hashOf(body), true), true, "", ""},
		{"declared hash, data plane", sign("cloudtrail-data", akid, secret, hashOf(body), true), true, "", ""},
		{"no header (botocore)", sign("cloudtrail", akid, secret, hashOf(body), false), false, "", ""},
		{"declared hash, wrong secret", sign("cloudtrail", akid, "nope", hashOf(body), true), false, "InvalidSignatureException", "InvalidSignatureException"},
		{"no header, wrong secret", sign("cloudtrail", akid, "nope", hashOf(body), false), false, "", "InvalidSignatureException"},
		{"unknown key", sign("cloudtrail", "AKIANOBODY", secret, hashOf(body), false), false, "UnrecognizedClientException", "UnrecognizedClientException"},
		{"declared hash of another body", sign("cloudtrail", akid, secret, hashOf("{}"), true), true, "", "InvalidSignatureException"},
		{"unsigned payload", sign("cloudtrail", akid, secret, UnsignedPayload, true), false, "InvalidSignatureException", "InvalidSignatureException"},
		{"streaming", sign("cloudtrail", akid, secret, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", true), false, "InvalidSignatureException", "InvalidSignatureException"},
		{"s3 unsigned payload", sign("s3", akid, secret, UnsignedPayload, true), true, "", ""},
		{"s3 declared hash of another body", sign("s3", akid, secret, hashOf("{}"), true), true, "", "XAmzContentSHA256Mismatch"},
		{"uppercase hash", sign("cloudtrail", akid, secret, strings.ToUpper(hashOf(body)), true), false, "", "InvalidSignatureException"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := verifier(now)
			verified, err := v.VerifyHeader(tc.r)
			if code := errCode(err); verified != tc.verified || code != tc.code {
				t.Errorf("VerifyHeader = %v, %v; want %v, %q", verified, err, tc.verified, tc.code)
			}
			if _, err := v.Verify(tc.r, []byte(body)); errCode(err) != tc.bodyCode {
				t.Errorf("Verify = %v; want %q", err, tc.bodyCode)
			}
		})
	}
}

func errCode(err error) string {
	if err == nil {
		return ""
	}
	if e, ok := err.(*Error); ok {
		return e.Code
	}
	return err.Error()
}

func FuzzVerify(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa0", "20150830T123600Z", "a=1&b")
	f.Add("AWS4-HMAC-SHA256 ,,,==", "", "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a/b/c/d/aws4_request&X-Amz-Expires=x")
	v := verifier(time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC))
	f.Fuzz(func(t *testing.T, auth, date, query string) {
		r := httptest.NewRequest("GET", "http://example.amazonaws.com/", nil)
		r.URL.RawQuery = query
		r.Header.Set("Authorization", auth)
		r.Header.Set("X-Amz-Date", date)
		if _, err := v.Verify(r, []byte("body")); err != nil {
			if _, ok := err.(*Error); !ok {
				t.Errorf("error %T is not *Error", err)
			}
		}
		if verified, err := v.VerifyHeader(r); err != nil {
			if _, ok := err.(*Error); !ok || verified {
				t.Errorf("VerifyHeader = %v, %T; want false, *Error", verified, err)
			}
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	now := time.Now()
	r, _ := http.NewRequest("POST", "http://127.0.0.1/", strings.NewReader(`{}`))
	v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: akid, SecretAccessKey: secret}, r, hashOf(`{}`), "cloudtrail", "us-east-1", now)
	r.Host = "127.0.0.1"
	v := verifier(now)
	for b.Loop() {
		if _, err := v.Verify(r, []byte(`{}`)); err != nil {
			b.Fatal(err)
		}
	}
}
