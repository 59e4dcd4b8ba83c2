package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-audit/cairn/internal/audit"
)

// TestInvalidRegionsRefusedAtTheDoor: a call whose SigV4 credential scope
// names no region (or is malformed) is answered in its service's wire
// format as AWS answers it, and is neither forwarded nor recorded, for
// every protocol, signed in the header or presigned; valid unusual
// regions and unsigned calls go through and are recorded in their region.
func TestInvalidRegionsRefusedAtTheDoor(t *testing.T) {
	var upstreamHits atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamHits.Add(1)
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.Write([]byte(`{}`))
	}))
	defer up.Close()
	u, _ := url.Parse(up.URL)
	rec := &collector{}
	reg := prometheus.NewRegistry()
	gw, err := New(Config{Upstreams: map[string]*url.URL{"default": u}, Recorder: rec, DefaultAccount: "111111111111", Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	defer srv.Close()
	defer gw.Close()
	creds := aws.Credentials{AccessKeyID: "AKIAALICE00000000001", SecretAccessKey: "alice-secret-key"}

	type call struct {
		service, method, path, target, ctype, body string
	}
	calls := []call{
		{"dynamodb", "POST", "/", "DynamoDB_20120810.ListTables", "application/x-amz-json-1.0", `{}`},
		{"sts", "POST", "/", "", "application/x-www-form-urlencoded", "Action=GetCallerIdentity&Version=2011-06-15"},
		{"ec2", "POST", "/", "", "application/x-www-form-urlencoded", "Action=DescribeInstances&Version=2016-11-15"},
		{"s3", "GET", "/bucket/key", "", "", ""},
		{"lambda", "GET", "/2015-03-31/functions/", "", "", ""},
		{"nosuchservice", "POST", "/", "X.Y", "application/x-amz-json-1.1", `{}`},
	}
	wantCode := map[string]string{"dynamodb": "InvalidSignatureException", "sts": "SignatureDoesNotMatch",
		"ec2": "SignatureDoesNotMatch", "s3": "AuthorizationHeaderMalformed", "lambda": "InvalidSignatureException",
		"nosuchservice": "InvalidSignatureException"}
	invalid := []string{"..", "<script>", strings.Repeat("r", 300), "US-EAST-1", "", "us-east-1/../x", "aws-global", "us_east_1", "../../../../etc"}
	now := time.Now()
	for _, c := range calls {
		for _, region := range invalid {
			for _, presign := range []bool{false, true} {
				r, _ := http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(c.body))
				if c.target != "" {
					r.Header.Set("X-Amz-Target", c.target)
				}
				if c.ctype != "" {
					r.Header.Set("Content-Type", c.ctype)
				}
				sum := hashHex(c.body)
				if presign {
					s, _, err := v4.NewSigner().PresignHTTP(context.Background(), creds, r, sum, c.service, region, now)
					if err != nil {
						t.Fatal(err)
					}
					r.URL, _ = url.Parse(s)
				} else if err := v4.NewSigner().SignHTTP(context.Background(), creds, r, sum, c.service, region, now); err != nil {
					t.Fatal(err)
				}
				resp, err := http.DefaultClient.Do(r)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				code, msg := parseError(resp.StatusCode, resp.Header, b)
				want := wantCode[c.service]
				switch {
				case strings.Contains(region, "/"): // the scope has too many parts
					// The service is not known either: JSON when the
					// request names a target, else query XML.
					want = map[bool]string{true: "IncompleteSignatureException", false: "IncompleteSignature"}[c.target != ""]
				case presign && c.service == "s3":
					want = "AuthorizationQueryParametersError"
				}
				if resp.StatusCode/100 != 4 || code != want {
					t.Errorf("%s region %.20q presigned %v: %d %s %q; want 4xx %s", c.service, region, presign, resp.StatusCode, code, msg, want)
				}
				if strings.Contains(string(b), "<script>") {
					t.Errorf("%s region %.20q: the answer holds the region unescaped: %s", c.service, region, b)
				}
			}
		}
	}
	if n := upstreamHits.Load(); n != 0 {
		t.Errorf("%d refused calls reached the upstream", n)
	}
	if len(rec.recs) != 0 {
		t.Errorf("%d refused calls were recorded", len(rec.recs))
	}
	if n := gathered(t, reg, "cairn_gateway_refused_total", "invalid_region"); n == 0 {
		t.Error("cairn_gateway_refused_total{reason=invalid_region} did not count")
	}

	// The SDK's own client gets the error AWS gives.
	// The SDK's own client gets the error AWS gives (the SDK itself
	// refuses regions that are no host label, such as '..').
	for _, region := range []string{"US-EAST-1", "x", "us-east-1a"} {
		ddb := dynamodb.New(dynamodb.Options{Region: region, BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1,
			Credentials: credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, "")})
		_, err = ddb.ListTables(context.Background(), &dynamodb.ListTablesInput{})
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != "InvalidSignatureException" || !strings.Contains(ae.ErrorMessage(), "valid region") {
			t.Errorf("dynamodb ListTables signed for %q = %v", region, err)
		}
	}

	// Valid regions of every partition, and unsigned calls, go through.
	for _, region := range []string{"us-gov-west-1", "cn-north-1", "ap-southeast-5", "eusc-de-east-1", "il-central-1"} {
		c := sts.New(sts.Options{Region: region, BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1,
			Credentials: credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, "")})
		mark := rec.mark()
		_, _ = c.GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
		if ev := rec.lastSince(t, "GetCallerIdentity", mark); ev.AWSRegion != region {
			t.Errorf("GetCallerIdentity signed for %s recorded in %q", region, ev.AWSRegion)
		}
	}
	mark := rec.mark()
	resp, err := http.Get(srv.URL + "/bucket/key")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ev := rec.lastSince(t, "GET", mark); ev.AWSRegion != "us-east-1" || ev.UserIdentity.Type != "Unknown" {
		t.Errorf("unsigned call recorded in %q as %+v", ev.AWSRegion, ev.UserIdentity)
	}
	for _, r := range rec.recs {
		if a, err := audit.Extract(r.Raw); err != nil || !audit.ValidRegion(a.Region) {
			t.Errorf("a record in region %q (%v)", a.Region, err)
		}
	}
}

func hashHex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}
