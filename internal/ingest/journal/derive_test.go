package journal

import (
	"testing"

	"github.com/cairn-audit/cairn/internal/audit"
)

// TestReplayDerivesResources: a record journaled by a cairn that did not
// derive resources (docs/store.md) is replayed with those LookupEvents
// derives: here the real CreateUser of the Stratus Red Team backdoor user
// (testdata/real/invictus-ir-aws_dataset), trimmed.
func TestReplayDerivesResources(t *testing.T) {
	raw := []byte(`{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","accountId":"123837392027","userName":"stratus"},` +
		`"eventTime":"2023-07-10T12:23:05Z","eventSource":"iam.amazonaws.com","eventName":"CreateUser","awsRegion":"us-east-1",` +
		`"requestParameters":{"userName":"malicious-iam-user","tags":[{"key":"StratusRedTeam","value":"true"}]},` +
		`"responseElements":{"user":{"userName":"malicious-iam-user","arn":"arn:aws:iam::123837392027:user/malicious-iam-user"}},` +
		`"eventID":"8a5d4a3c-1111-4222-8333-444455556666","readOnly":false,"eventType":"AwsApiCall","managementEvent":true,` +
		`"recipientAccountId":"123837392027","eventCategory":"Management"}`)
	r, err := audit.Extract(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Resources) != 1 {
		t.Fatalf("Extract: resources %+v; want the user", r.Resources)
	}
	old := r
	old.Resources = nil // as an earlier cairn journaled it
	got, err := decodeRecord(encodeRecord(nil, &old))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Resources) != 1 || got.Resources[0] != (audit.Resource{Type: "AWS::IAM::User", Name: "malicious-iam-user"}) {
		t.Errorf("replayed resources %+v; want AWS::IAM::User malicious-iam-user", got.Resources)
	}
}
