package apiserver

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/trail"
)

// TestListPublicKeys lists the keys of the caller's region over a time
// range: one now, both of a rotation over three days, in the wire form
// (base64 DER, epoch seconds), and refuses a reversed range, a bad time, a
// NextToken and a body that is not an object.
func TestListPublicKeys(t *testing.T) {
	kr, err := trail.OpenKeyring(t.TempDir(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	k1, _ := kr.Current("us-east-1", t0)
	kr.Current("us-east-1", t0.Add(25*time.Hour))
	kr.Current("eu-west-1", t0)
	h := PublicKeyHandlers(kr)["ListPublicKeys"]
	call := func(body string, at time.Time) (listPublicKeysOutput, error) {
		out, err := h(context.Background(), &Request{Caller: Caller{Principal: audit.Principal{AccountID: "111122223333", Region: "us-east-1"}},
			Body: []byte(body), Time: at})
		if err != nil {
			return listPublicKeysOutput{}, err
		}
		return out.(listPublicKeysOutput), nil
	}
	out, err := call(`{}`, t0.Add(2*time.Hour))
	if err != nil || len(out.PublicKeyList) != 1 || out.PublicKeyList[0].Fingerprint != k1.Fingerprint {
		t.Errorf("now: %v %v", out, err)
	}
	out, _ = call(`{"StartTime":1767225600,"EndTime":1767484800}`, t0)
	if len(out.PublicKeyList) != 2 {
		t.Errorf("both us-east-1 keys over three days: %d", len(out.PublicKeyList))
	}
	b, _ := json.Marshal(out.PublicKeyList[0])
	if !strings.Contains(string(b), `"Value":"MIIBCgKCAQEA`) || !strings.Contains(string(b), `"ValidityStartTime":1767225600`) {
		t.Errorf("wire form %s", b)
	}
	for _, body := range []string{`{"StartTime":1767484800,"EndTime":1767225600}`, `{"StartTime":"x"}`, `{"NextToken":"abc"}`, `[]`} {
		if _, err := call(body, t0); err == nil {
			t.Errorf("%s accepted", body)
		}
	}
}
