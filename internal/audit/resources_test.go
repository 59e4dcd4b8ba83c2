package audit_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
)

// TestDerivedResourcesAsAWSAnswers derives the Resources of real records
// that carry no resources member and compares them with what AWS's
// LookupEvents answered for the same records, where that answer is
// published: plaso's test_data/jsonl/aws_cloudtrail.jsonl (commit
// 4ea03ef9, the LookupEvents dump whose CloudTrailEvent strings are
// testdata/real/plaso/). CreateSecurityGroup's VPC is left out: the
// publisher anonymised the record's vpcId and the answer's differently.
func TestDerivedResourcesAsAWSAnswers(t *testing.T) {
	aws := map[string][]string{ // eventName → AWS's Resources, "type name"
		"DescribeInstances":           nil, // a read
		"SharedSnapshotVolumeCreated": nil, // a service event
		"TerminateInstances":          {"AWS::EC2::Instance i-01234567890123456"},
		"StopInstances":               {"AWS::EC2::Instance i-01234567890123456"},
		"RunInstances": {"AWS::EC2::VPC vpc-01234567890123456", "AWS::EC2::Ami ami-01234567890123456",
			"AWS::EC2::NetworkInterface eni-01234567890123456", "AWS::EC2::Instance i-01234567890123456",
			"AWS::EC2::KeyPair aws-testing", "AWS::EC2::SecurityGroup no-access",
			"AWS::EC2::SecurityGroup sg-01234567890123456", "AWS::EC2::Subnet subnet-01234567890123456"},
		"CreateSecurityGroup": {"AWS::EC2::SecurityGroup no-access", "AWS::EC2::SecurityGroup sg-01234567890123456"},
	}
	n := 0
	for _, rr := range audittest.RealRecords(t) {
		if !strings.HasPrefix(rr.File, "plaso/") {
			continue
		}
		r, err := audit.Extract(rr.Raw)
		if err != nil {
			t.Fatal(err)
		}
		want, ok := aws[r.EventName]
		if !ok {
			t.Fatalf("%s: no AWS answer in the table", r.EventName)
		}
		var got []string
		for _, x := range r.Resources {
			if r.EventName == "CreateSecurityGroup" && x.Type == "AWS::EC2::VPC" {
				continue
			}
			got = append(got, x.Type+" "+x.Name)
		}
		slices.Sort(got)
		want = slices.Sorted(slices.Values(want))
		if !slices.Equal(got, want) {
			t.Errorf("%s: derived %q; AWS answered %q", r.EventName, got, want)
		}
		n++
	}
	if n != 6 {
		t.Fatalf("%d plaso records; want 6", n)
	}
}

// TestDerivedResourcesOfRealRecords: for each rule's kind of record, what
// the rules derive from real records (invictus-ir-aws_dataset: the
// Stratus Red Team backdoor user malicious-iam-user, its policy and key;
// datadog-stratus-red-team; traildiscover), and that records with a
// resources member keep exactly theirs.
func TestDerivedResourcesOfRealRecords(t *testing.T) {
	want := map[string][]string{ // "file#eventName[#text the record holds]" → resources
		"218007301253_CloudTrail_us-east-1_20230710T1230Z_ZtUNbBkwAu98FPZb.json.gz#CreateUser#malicious-iam-user": {"AWS::IAM::User malicious-iam-user"},
		"218007301253_CloudTrail_us-east-1_20230710T1230Z_ZtUNbBkwAu98FPZb.json.gz#AttachUserPolicy#malicious-iam-user": {
			"AWS::IAM::Policy arn:aws:iam::aws:policy/AdministratorAccess", "AWS::IAM::User malicious-iam-user"},
		"218007301253_CloudTrail_us-east-1_20230710T1230Z_ZtUNbBkwAu98FPZb.json.gz#CreateAccessKey#malicious-iam-user": {
			"AWS::IAM::AccessKey AKIATFQR7NSCQLA2F4OD", "AWS::IAM::User malicious-iam-user"},
		"218007301253_CloudTrail_us-east-1_20230710T1230Z_lHgkh3VeI3XnjZSL.json.gz#ListAccessKeys": nil, // a read
		"218007301253_CloudTrail_us-east-1_20230710T1220Z_WMiHxZgr5Hdd6UDc.json.gz#CreateVolume":   {"AWS::EC2::Volume vol-0fc2e34e74650e145"},
		"218007301253_CloudTrail_us-east-1_20230710T1215Z_MifI13MOmOjRfXzJ.json.gz#CreateSnapshot": {
			"AWS::EC2::Snapshot snap-083d3b857c13988bc", "AWS::EC2::Volume vol-0fc2e34e74650e145"},
		"218007301253_CloudTrail_us-east-1_20230710T1205Z_SjF3IkuNXJkoHyar.json.gz#CreateBucket": {
			"AWS::S3::Bucket stratus-red-team-ctlr-bucket-zqfsvooxqj"},
		"aws.persistence.lambda-overwrite-code.json#UpdateFunctionCode20150331v2": nil, // see below
	}
	found := map[string]bool{}
	for _, rr := range audittest.RealRecords(t) {
		r, err := audit.Extract(rr.Raw)
		if err != nil {
			continue
		}
		file := rr.File[strings.LastIndexByte(rr.File, '/')+1:]
		var k string
		var w []string
		ok := false
		for key, res := range want {
			parts := strings.SplitN(key, "#", 3)
			if parts[0] == file && parts[1] == r.EventName && (len(parts) < 3 || strings.Contains(string(rr.Raw), parts[2])) {
				k, w, ok = key, res, true
			}
		}
		if !ok || found[k] {
			continue
		}
		found[k] = true
		var got []string
		for _, x := range r.Resources {
			got = append(got, x.Type+" "+x.Name)
		}
		slices.Sort(got)
		if k == "aws.persistence.lambda-overwrite-code.json#UpdateFunctionCode20150331v2" {
			if len(got) == 0 || !strings.HasPrefix(got[0], "AWS::Lambda::Function ") {
				t.Errorf("%s: %q; want the function", k, got)
			}
			continue
		}
		if !slices.Equal(got, slices.Sorted(slices.Values(w))) {
			t.Errorf("%s: derived %q; want %q", k, got, w)
		}
	}
	for k := range want {
		if !found[k] {
			t.Errorf("no real record %s", k)
		}
	}
	// Records with resources keep theirs: AssumeRole names the role only.
	for _, rr := range audittest.RealRecords(t) {
		r, err := audit.Extract(rr.Raw)
		if err != nil || r.EventName != "AssumeRole" || !strings.Contains(string(rr.Raw), `"resources"`) {
			continue
		}
		if len(r.Resources) != 1 || r.Resources[0].Type != "AWS::IAM::Role" {
			t.Errorf("AssumeRole %s: resources %+v", r.EventID, r.Resources)
		}
		break
	}
}

// TestDeriveResourcesHostile: odd shapes give no resource and no panic.
func TestDeriveResourcesHostile(t *testing.T) {
	for i, p := range []string{`null`, `[]`, `{"userName":7}`, `{"userName":{"a":1}}`, `{"instancesSet":{"items":"x"}}`,
		`{"instancesSet":{"items":[null,1,{"instanceId":[]}]}}`, `{`, `{"userName":"` + strings.Repeat("a", 5000) + `"}`} {
		for _, src := range []string{"iam.amazonaws.com", "ec2.amazonaws.com"} {
			if got := audit.DeriveResources(src, audit.False, []byte(p), []byte(p)); len(got) != 0 {
				t.Errorf("%d %s %s: %+v", i, src, p, got)
			}
		}
	}
	if got := audit.DeriveResources("iam.amazonaws.com", audit.False, []byte(`{"userName":"u"}`), nil); fmt.Sprint(got) != "[{AWS::IAM::User u }]" {
		t.Errorf("got %+v", got)
	}
}
