package audit_test

import (
	"reflect"
	"strings"
	"testing"

	. "github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
)

// sameDerived fails when deriveScan answers otherwise than DeriveResources;
// it reports whether deriveScan read the members itself.
func sameDerived(t *testing.T, source string, req, resp []byte) bool {
	t.Helper()
	got, ok := DeriveScan(source, False, req, resp)
	want := DeriveResources(source, False, req, resp)
	if ok && !reflect.DeepEqual(got, want) {
		t.Fatalf("deriveScan(%s, %.200q, %.200q) = %+v; DeriveResources = %+v", source, req, resp, got, want)
	}
	return ok
}

// TestDeriveScanOfRealRecords: on the members of every real record, read
// as a record of each source with rules (not only its own), deriveScan
// derives what the decoding derives, and reads nearly all of them itself.
func TestDeriveScanOfRealRecords(t *testing.T) {
	n, fast, found := 0, 0, 0
	for _, rr := range audittest.RealRecords(t) {
		req, resp, ok := ScannedMembers(rr.Raw)
		if !ok || len(req) == 0 && len(resp) == 0 {
			continue
		}
		for _, source := range DeriveSources() {
			n++
			if sameDerived(t, source, req, resp) {
				fast++
			}
			if len(DeriveResources(source, False, req, resp)) > 0 {
				found++
			}
		}
	}
	if found < 100 || fast < n*99/100 {
		t.Errorf("deriveScan read %d of %d; %d derived resources; want at least 99%% and 100", fast, n, found)
	}
	t.Logf("deriveScan read %d of %d (%d with resources)", fast, n, found)
}

// deriveVariants are requestParameters (or responseElements) deriveScan
// must read as the decoding does, or leave to it.
var deriveVariants = []string{
	`{"userName":"u","roleName":"r","groupName":"g","policyArn":"arn:aws:iam::aws:policy/P","accessKeyId":"AK"}`,
	`{"userName":"u","userName":"v"}`,
	`{"user\u004eame":"u"}`,
	`{"userName":"u\u0041"}`,
	`{"userName":"u\xff"}`,
	`{"userName":"u","x":"\xfe","y":{"userName":"deep"}}`,
	`{"userName":null,"roleName":5,"groupName":{"a":"b"},"policyArn":["x"]}`,
	`{"userName":""}`,
	`{"userName":"` + strings.Repeat("a", 2049) + `"}`,
	`{"user":{"userName":"a"},"role":{"roleName":"r"},"user":{"userName":"b"}}`,
	`{"user":{"userName":"a","userName":"b"}}`,
	// A repeated name off the paths: the decoding merges, or fails (an
	// object, then a string) and looks at none of the member.
	`{"a":{"b":1},"a":"s","bucketName":"b","userName":"u"}`,
	`{"a":{"b":1},"a":{"c":2},"bucketName":"b","userName":"u"}`,
	`{"x":[{"a":1,"a":2}],"bucketName":"b","userName":"u"}`,
	`{"instancesSet":{"items":[{"a":{"b":[{"c":"d"}]},"a":"","subnetId":"s"}]}}`,
	`{"aÿ":1,"aþ":2,"bucketName":"b","userName":"u"}`,
	`{"n1":1,"n2":1,"n3":1,"n4":1,"n5":1,"n6":1,"n7":1,"n8":1,"n9":1,"n10":1,"n11":1,"n12":1,"n13":1,"n14":1,"n15":1,"n16":1,"n17":1,"n1":{},"bucketName":"b","userName":"u"}`,
	`{"n1":1,"n2":1,"n3":1,"n4":1,"n5":1,"n6":1,"n7":1,"n8":1,"n9":1,"n10":1,"n11":1,"n12":1,"n13":1,"n14":1,"n15":1,"n16":1,"n17":1,"n18":{},"bucketName":"b","userName":"u"}`,
	`{"instancesSet":{"items":[{"instanceId":"i-1","imageId":"ami-1","keyName":"k"},{"instanceId":"i-2"},"s",null,{"instanceId":"i-1"}]}}`,
	`{"instancesSet":{"items":{"instanceId":"i-1"}}}`,
	`{"instancesSet":{"items":[{"networkInterfaceSet":{"items":[{"networkInterfaceId":"eni-1"},{"networkInterfaceId":"eni-2"}]},"groupSet":{"items":[{"groupName":"g","groupId":"sg-1"}]},"vpcId":"vpc-1","subnetId":"subnet-1"}]}}`,
	`{"instancesSet":{"items":[{"instanceId":"i-1"}],"items":[{"instanceId":"i-2"}]}}`,
	`{"instancesSet":{"items":[]},"vpcId":"vpc-1","groupName":"a","groupId":"sg-2"}`,
	`{"bucketName":"b","x":1e5}`,
	`{"bucketName":"b","x":` + strings.Repeat("9", 400) + `}`,
	`{"bucketName":"b","x":01}`,
	`{"bucketName":"b",}`,
	`{"bucketName":"b"} `,
	`{"bucketName":"b"}x`,
	`{"bucketName":"b"`,
	`{"keyId":"arn:aws:kms:us-east-1:1:key/k","keyMetadata":{"arn":"arn:aws:kms:us-east-1:1:key/k"}}`,
	`{"functionName":"f","name":"n","secretId":"s","arn":"arn:x","trailName":"t"}`,
	`{"d":` + strings.Repeat(`[`, 300) + strings.Repeat(`]`, 300) + `}`,
	`{}`,
	`[]`,
	`"s"`,
	``,
}

func TestDeriveScanVariants(t *testing.T) {
	for _, source := range DeriveSources() {
		for _, req := range deriveVariants {
			sameDerived(t, source, []byte(req), nil)
			sameDerived(t, source, nil, []byte(req))
			sameDerived(t, source, []byte(req), []byte(req))
		}
	}
	// A record of no rule's source, and a read: none, as DeriveResources.
	for _, tc := range []struct {
		source string
		ro     Tri
	}{{"sts.amazonaws.com", False}, {"iam.amazonaws.com", True}} {
		got, ok := DeriveScan(tc.source, tc.ro, []byte(deriveVariants[0]), nil)
		if !ok || got != nil {
			t.Errorf("deriveScan(%s, %v) = %v, %v; want nil, true", tc.source, tc.ro, got, ok)
		}
	}
}

// FuzzDeriveScan: on any members, deriveScan derives what the decoding
// derives, or leaves them to it.
func FuzzDeriveScan(f *testing.F) {
	for i, v := range deriveVariants {
		f.Add(uint8(i), []byte(v), []byte(deriveVariants[(i+3)%len(deriveVariants)]))
	}
	sources := DeriveSources()
	f.Fuzz(func(t *testing.T, source uint8, req, resp []byte) {
		sameDerived(t, sources[int(source)%len(sources)], req, resp)
	})
}
