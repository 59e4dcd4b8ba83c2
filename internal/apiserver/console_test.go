package apiserver

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
)

// TestServeConsole: a console call is served for the principal it is
// given (no signature read; the account is the principal's, whatever the
// request says) through the same dispatch and errors as a signed call, and
// recorded as console use: sessionCredentialFromConsole "true", the
// request's userAgent, no tlsDetails. A signed call is not marked.
func TestServeConsole(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	s, st := newTestServer(t, now, 0)
	p := audit.Principal{AccountID: "333333333333", UserName: "carol", ARN: "arn:aws:iam::333333333333:user/carol",
		PrincipalID: "AIDAC", AccessKeyID: "AKIACAROL", Region: "eu-west-1"}
	call := func(op, body string, withTLS bool) (int, string) {
		r := httptest.NewRequest("POST", "/", strings.NewReader(body))
		r.Header.Set("X-Amz-Target", "CloudTrail_20131101."+op)
		r.Header.Set("User-Agent", "cairn-console")
		r.Header.Set("X-Test-Account", "111111111111") // the fake authenticator's; never read here
		if withTLS {
			r.TLS = &tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256}
		}
		w := httptest.NewRecorder()
		s.ServeConsole(w, r, p)
		return w.Code, w.Body.String()
	}
	for _, tc := range []struct {
		op, body string
		code     int
		errType  string
	}{
		{"LookupEvents", `{"MaxResults":5}`, 200, ""},
		{"LookupEvents", `{"MaxResults":500}`, 400, "InvalidMaxResultsException"},
		{"LookupEvents", `{"LookupAttributes":[{"AttributeKey":"Nope","AttributeValue":"x"}]}`, 400, "InvalidLookupAttributesException"},
		{"NoSuchOperation", `{}`, 400, "UnknownOperationException"},
		{"LookupEvents", "{\"NextToken\":\"\x00\"}", 400, ""},
	} {
		code, body := call(tc.op, tc.body, true)
		if code != tc.code || !strings.Contains(body, tc.errType) {
			t.Errorf("%s %q = %d %s; want %d %s", tc.op, tc.body, code, body, tc.code, tc.errType)
		}
	}
	pg, err := st.Lookup(context.Background(), audit.Query{Account: "333333333333", Region: "eu-west-1", Category: audit.CategoryManagement, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(pg.Records) < 3 {
		t.Fatalf("%d records of the console's calls in the principal's account and region; want at least 3", len(pg.Records))
	}
	for _, r := range pg.Records {
		var ev map[string]any
		json.Unmarshal(r.Raw, &ev)
		id, _ := ev["userIdentity"].(map[string]any)
		if ev["sessionCredentialFromConsole"] != "true" || ev["userAgent"] != "cairn-console" || ev["tlsDetails"] != nil || id["accessKeyId"] != "AKIACAROL" {
			t.Errorf("console call record = %s", r.Raw)
		}
	}
	if other, _ := st.Lookup(context.Background(), audit.Query{Account: "111111111111", Region: "us-east-1", Category: audit.CategoryManagement, Limit: 100}); len(other.Records) != 0 {
		t.Errorf("a console call was recorded in the account its request named")
	}
	// A signed call of the same server is not marked as console use.
	if code, _ := do(t, s, "111111111111", "LookupEvents", `{}`); code != 200 {
		t.Fatalf("signed LookupEvents = %d", code)
	}
	signed, _ := st.Lookup(context.Background(), audit.Query{Account: "111111111111", Region: "us-east-1", Category: audit.CategoryManagement, Limit: 10})
	if len(signed.Records) != 1 || strings.Contains(string(signed.Records[0].Raw), "sessionCredentialFromConsole") {
		t.Errorf("signed call records = %d, marked as console use: %s", len(signed.Records), signed.Records)
	}
}
