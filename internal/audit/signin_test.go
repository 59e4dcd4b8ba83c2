package audit_test

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
)

func keys(m map[string]json.RawMessage) []string { return slices.Sorted(maps.Keys(m)) }

// TestSignInRecordHasTheRealShape: a ConsoleLogin cairn writes has the
// members of a real one (datadog-stratus-red-team's console login) at the
// top level and in userIdentity, and AWS's values where they are fixed.
func TestSignInRecordHasTheRealShape(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(audittest.RealDataDir(t), "datadog-stratus-red-team", "aws.initial-access.console-login-without-mfa.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct{ Records []map[string]json.RawMessage }
	if err := json.Unmarshal(b, &file); err != nil || len(file.Records) != 1 {
		t.Fatalf("real record: %v", err)
	}
	real := file.Records[0]
	p := audit.Principal{AccountID: "111111111111", UserName: "alice", ARN: "arn:aws:iam::111111111111:user/alice",
		PrincipalID: "AIDAEXAMPLE", AccessKeyID: "AKIAEXAMPLE", Region: "us-east-1"}
	for _, success := range []bool{true, false} {
		raw, err := audit.SignInRecord(audit.SignIn{Principal: p, Time: time.Unix(1700000000, 0), EventID: "e", SourceIP: "192.0.2.1",
			UserAgent: "browser", LoginTo: "https://cairn.example/console/", Success: success,
			TLS: &audit.CallTLS{Version: 0x0304, CipherSuite: "TLS_AES_128_GCM_SHA256", Host: "cairn.example"}}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]json.RawMessage
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatal(err)
		}
		wantKeys := keys(real)
		if !success {
			wantKeys = append(wantKeys, "errorMessage")
			slices.Sort(wantKeys)
		}
		if !slices.Equal(keys(got), wantKeys) {
			t.Errorf("success %v: members %v; want %v", success, keys(got), wantKeys)
		}
		var gotID, realID map[string]json.RawMessage
		json.Unmarshal(got["userIdentity"], &gotID)
		json.Unmarshal(real["userIdentity"], &realID)
		if !slices.Equal(keys(gotID), keys(realID)) {
			t.Errorf("userIdentity members %v; want %v", keys(gotID), keys(realID))
		}
		for _, k := range []string{"eventSource", "eventName", "eventType", "eventCategory", "managementEvent", "readOnly", "requestParameters"} {
			if string(got[k]) != string(real[k]) {
				t.Errorf("%s = %s; want %s", k, got[k], real[k])
			}
		}
		want := `{"ConsoleLogin":"Success"}`
		if !success {
			want = `{"ConsoleLogin":"Failure"}`
			if string(got["errorMessage"]) != `"Failed authentication"` {
				t.Errorf("errorMessage = %s", got["errorMessage"])
			}
		}
		if string(got["responseElements"]) != want {
			t.Errorf("responseElements = %s; want %s", got["responseElements"], want)
		}
		var extra map[string]string
		json.Unmarshal(got["additionalEventData"], &extra)
		if extra["MFAUsed"] != "No" || extra["MobileVersion"] != "No" || extra["LoginTo"] != "https://cairn.example/console/" {
			t.Errorf("additionalEventData = %v", extra)
		}
		rec, err := audit.Extract(raw)
		if err != nil || rec.Account != p.AccountID || rec.Region != "us-east-1" || rec.EventName != "ConsoleLogin" {
			t.Errorf("Extract = %+v, %v", rec, err)
		}
	}
}
