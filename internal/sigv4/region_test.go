package sigv4

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/cairn-audit/cairn/internal/audit"
)

// TestCredentialScopeRegion: a signature scoped to something that is no
// region is refused before anything else, in the header and in a
// presigned URL, as AWS refuses it; real regions of every partition pass.
func TestCredentialScopeRegion(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 10, 0, 0, time.UTC)
	creds := aws.Credentials{AccessKeyID: akid, SecretAccessKey: secret}
	for _, tc := range []struct {
		region, code string
	}{
		{"..", "InvalidSignatureException"},
		{"<script>", "InvalidSignatureException"},
		{strings.Repeat("r", 300), "InvalidSignatureException"},
		{"US-EAST-1", "InvalidSignatureException"},
		{"", "InvalidSignatureException"},
		{"us-east-1 ", "InvalidSignatureException"},
		{"aws-global", "InvalidSignatureException"},
		{"us-east-1/../x", "IncompleteSignatureException"},
		{"us-east-1", ""},
		{"us-gov-west-1", ""},
		{"cn-north-1", ""},
		{"ap-southeast-5", ""},
		{"eusc-de-east-1", ""},
		{"us-isob-east-1", ""},
	} {
		for _, presign := range []bool{false, true} {
			r := httptest.NewRequest("GET", "http://h/?X-Amz-Expires=60", nil)
			if presign {
				u, _, err := v4.NewSigner().PresignHTTP(context.Background(), creds, r, hashOf(""), "cloudtrail", tc.region, now)
				if err != nil {
					t.Fatal(err)
				}
				r = httptest.NewRequest("GET", u, nil)
			} else {
				r.URL.RawQuery = ""
				if err := v4.NewSigner().SignHTTP(context.Background(), creds, r, hashOf(""), "cloudtrail", tc.region, now); err != nil {
					t.Fatal(err)
				}
			}
			res, err := verifier(now).Verify(r, nil)
			if tc.code == "" {
				if err != nil || res.Region != tc.region {
					t.Errorf("Verify(region %q, presigned %v) = %+v, %v; want it verified", tc.region, presign, res, err)
				}
				continue
			}
			e, ok := err.(*Error)
			if !ok || e.Code != tc.code || e.Status/100 != 4 {
				t.Errorf("Verify(region %q, presigned %v) = %v; want %s", audit.Clip(tc.region, 128), presign, err, tc.code)
				continue
			}
			if tc.code == "InvalidSignatureException" && !strings.HasPrefix(e.Message, "Credential should be scoped to a valid region, not '") {
				t.Errorf("Verify(region %q) message = %q", audit.Clip(tc.region, 128), e.Message)
			}
			if len(e.Message) > 256 {
				t.Errorf("Verify(region %q) message is %d bytes: the region is not clipped", audit.Clip(tc.region, 128), len(e.Message))
			}
		}
	}
}
