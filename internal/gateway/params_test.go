package gateway

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/cairn-audit/cairn/internal/gateway/routes"
)

// paths lists the key paths of a JSON value: a.b for objects, a[] for
// array elements.
func paths(v any, prefix string, out map[string]bool) map[string]bool {
	if out == nil {
		out = map[string]bool{}
	}
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			out[p] = true
			paths(x, p, out)
		}
	case []any:
		for _, x := range t {
			paths(x, prefix+"[]", out)
		}
	}
	return out
}

// sameShape checks that every key path of ours is one the real record of
// source/name has, and that ours has at least want of them.
func sameShape(t *testing.T, source, name string, ours map[string]any, want ...string) {
	t.Helper()
	reals := realRecords(t, source, name)
	if len(reals) == 0 {
		t.Fatalf("no real record of %s %s", source, name)
	}
	rp := map[string]bool{}
	for _, r := range reals {
		paths(r["requestParameters"], "", rp)
	}
	op := paths(ours, "", nil)
	var extra []string
	for p := range op {
		if !rp[p] {
			extra = append(extra, p)
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		b, _ := json.Marshal(ours)
		t.Errorf("%s: key paths the real record does not have: %v\nours: %s", name, extra, b)
	}
	for _, w := range want {
		if !op[w] || !rp[w] {
			b, _ := json.Marshal(ours)
			t.Errorf("%s: %s missing (ours %v, real %v): %s", name, w, op[w], rp[w], b)
		}
	}
}

func TestJSONParamsNestedNames(t *testing.T) {
	svc := func(n string) *routes.Service { return routes.Lookup(n) }
	op := func(s *routes.Service, name string) *routes.Operation {
		for i := range s.Operations {
			if s.Operations[i].Name == name {
				return &s.Operations[i]
			}
		}
		t.Fatalf("%s: no operation %s", s.Name, name)
		return nil
	}
	// Maps keep their keys; structure members are lower-camel at depth.
	logs := svc("logs")
	p := jsonParams([]byte(`{"logGroupName":"/stratus-red-team/vpc-flow-logs","tags":{"StratusRedTeam":"true"}}`), logs, op(logs, "CreateLogGroup"), nil)
	sameShape(t, "logs.amazonaws.com", "CreateLogGroup", p, "tags.StratusRedTeam")
	kms := svc("kms")
	p = jsonParams([]byte(`{"KeyId":"alias/aws/ssm","EncryptionContext":{"PARAMETER_ARN":"arn:aws:ssm:us-east-1:1:parameter/x"},"EncryptionAlgorithm":"SYMMETRIC_DEFAULT","Plaintext":"c2VjcmV0"}`), kms, op(kms, "Encrypt"), nil)
	sameShape(t, "kms.amazonaws.com", "Encrypt", p, "encryptionContext.PARAMETER_ARN")
	ssm := svc("ssm")
	p = jsonParams([]byte(`{"Name":"/credentials/x","Value":"s3cret","Type":"SecureString","Overwrite":false,"AllowedPattern":"","Tags":[{"Key":"StratusRedTeam","Value":"true"}],"Tier":"Standard"}`), ssm, op(ssm, "PutParameter"), sensitiveSet(ssm))
	sameShape(t, "ssm.amazonaws.com", "PutParameter", p, "tags[].key", "tags[].value")
	// The parameter's value is hidden, its tags' values are not (as the
	// 42 real PutParameter records: invictus-ir-aws_dataset).
	if p["value"] != hidden {
		t.Errorf("PutParameter value not redacted: %v", p["value"])
	}
	if tags, _ := p["tags"].([]any); len(tags) != 1 || tags[0].(map[string]any)["value"] != "true" {
		t.Errorf("PutParameter tags: %v; want the tag's value as sent", p["tags"])
	}
	p = jsonParams([]byte(`{"DocumentName":"AWS-RunShellScript","InstanceIds":[],"Parameters":{"commands":["id"]},"Interactive":false}`), ssm, op(ssm, "SendCommand"), nil)
	sameShape(t, "ssm.amazonaws.com", "SendCommand", p, "parameters.commands")
	ct := svc("cloudtrail")
	p = jsonParams([]byte(`{"TrailName":"t","EventSelectors":[{"ReadWriteType":"All","IncludeManagementEvents":true,"DataResources":[],"ExcludeManagementEventSources":[]}]}`), ct, op(ct, "PutEventSelectors"), nil)
	sameShape(t, "cloudtrail.amazonaws.com", "PutEventSelectors", p, "eventSelectors[].readWriteType")

	// DynamoDB (no real record here; AWS's documented UpdateTable record
	// has provisionedThroughput.readCapacityUnits): nested structures
	// lower-camel, attribute names as sent.
	ddb := svc("dynamodb")
	p = jsonParams([]byte(`{"TableName":"Music","ProvisionedThroughput":{"ReadCapacityUnits":25,"WriteCapacityUnits":25},"KeySchema":[{"AttributeName":"Artist","KeyType":"HASH"}]}`), ddb, op(ddb, "CreateTable"), nil)
	b, _ := json.Marshal(p)
	for _, w := range []string{`"provisionedThroughput":{"readCapacityUnits":25,"writeCapacityUnits":25}`, `"keySchema":[{"attributeName":"Artist","keyType":"HASH"}]`} {
		if !strings.Contains(string(b), w) {
			t.Errorf("CreateTable params %s lack %s", b, w)
		}
	}
	p = jsonParams([]byte(`{"TableName":"Music","Key":{"Artist":{"S":"No One"},"SongTitle":{"S":"Call Me"}},"ExpressionAttributeNames":{"#Y":"Year"}}`), ddb, op(ddb, "GetItem"), nil)
	b, _ = json.Marshal(p)
	for _, w := range []string{`"Artist":`, `"SongTitle":`, `"#Y":"Year"`, `"expressionAttributeNames"`} {
		if !strings.Contains(string(b), w) {
			t.Errorf("GetItem params %s lack %s", b, w)
		}
	}
}

func TestEC2ParamsAsCloudTrailWritesThem(t *testing.T) {
	for _, tc := range []struct {
		name string
		form string
		want []string
	}{
		{"DescribeInstances", "Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-1&InstanceId.2=i-2",
			[]string{"instancesSet.items[].instanceId"}},
		{"TerminateInstances", "Action=TerminateInstances&InstanceId.1=i-1", []string{"instancesSet.items[].instanceId"}},
		{"CreateTags", "Action=CreateTags&ResourceId.1=ami-1&Tag.1.Key=StratusRedTeam&Tag.1.Value=true",
			[]string{"resourcesSet.items[].resourceId", "tagSet.items[].key", "tagSet.items[].value"}},
		{"DescribeImages", "Action=DescribeImages&Filter.1.Name=name&Filter.1.Value.1=x",
			[]string{"filterSet.items[].name", "filterSet.items[].valueSet.items[].value"}},
		{"CreateSecurityGroup", "Action=CreateSecurityGroup&GroupName=g&GroupDescription=d&VpcId=vpc-1&TagSpecification.1.ResourceType=security-group&TagSpecification.1.Tag.1.Key=k&TagSpecification.1.Tag.1.Value=v",
			[]string{"groupName", "tagSpecificationSet.items[].resourceType", "tagSpecificationSet.items[].tags[].key"}},
		{"AuthorizeSecurityGroupIngress", "Action=AuthorizeSecurityGroupIngress&GroupId=sg-1&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=22&IpPermissions.1.ToPort=22&IpPermissions.1.IpRanges.1.CidrIp=0.0.0.0/24",
			[]string{"ipPermissions.items[].ipRanges.items[].cidrIp", "ipPermissions.items[].fromPort"}},
		{"RunInstances", "Action=RunInstances&ImageId=ami-1&MinCount=1&MaxCount=1&KeyName=k&InstanceType=t2.micro&Monitoring.Enabled=false",
			[]string{"instancesSet.items[].imageId", "instancesSet.items[].minCount", "instanceType", "monitoring.enabled"}},
		{"ModifySnapshotAttribute", "Action=ModifySnapshotAttribute&SnapshotId=snap-1&Attribute=createVolumePermission&CreateVolumePermission.Add.1.UserId=012345678912",
			[]string{"createVolumePermission.add.items[].userId"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form, err := url.ParseQuery(tc.form)
			if err != nil {
				t.Fatal(err)
			}
			p := ec2Params(form, tc.name, nil)
			delete(p, "attribute") // the CLI's name; AWS records attributeType
			sameShape(t, "ec2.amazonaws.com", tc.name, p, tc.want...)
		})
	}
}

func TestS3ConfigurationBodies(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cli := s3.NewFromConfig(e.cfg, func(o *s3.Options) { o.BaseEndpoint = aws.String(e.url); o.UsePathStyle = true })
	b := aws.String("conf-bucket")
	if _, err := cli.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: b, Tagging: &s3types.Tagging{TagSet: []s3types.Tag{{Key: aws.String("StratusRedTeam"), Value: aws.String("true")}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: b, VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	policy := `{"Version":"2012-10-17","Statement":[{"Sid":"AWSCloudTrailAclCheck","Effect":"Allow","Principal":{"Service":"cloudtrail.amazonaws.com"},"Action":"s3:GetBucketAcl","Resource":"arn:aws:s3:::conf-bucket"}]}`
	if _, err := cli.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: b, Policy: aws.String(policy)}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b"} {
		if _, err := cli.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String(k), Body: strings.NewReader("x")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: b, Delete: &s3types.Delete{Objects: []s3types.ObjectIdentifier{{Key: aws.String("a")}, {Key: aws.String("b")}}, Quiet: aws.Bool(true)}}); err != nil {
		t.Fatal(err)
	}
	params := func(name string) map[string]any {
		ev := e.rec.last(t, name)
		var p map[string]any
		if err := json.Unmarshal(ev.RequestParameters, &p); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		compareReal(t, ev)
		return p
	}
	sameShape(t, "s3.amazonaws.com", "PutBucketTagging", params("PutBucketTagging"), "Tagging.TagSet.Tag.Key", "Tagging.xmlns", "tagging")
	if p := params("PutBucketTagging"); p["Tagging"].(map[string]any)["TagSet"].(map[string]any)["Tag"].(map[string]any)["Value"] != true {
		t.Errorf("PutBucketTagging: tag value %v; want true typed as AWS writes it", p["Tagging"])
	}
	sameShape(t, "s3.amazonaws.com", "PutBucketVersioning", params("PutBucketVersioning"), "VersioningConfiguration.Status", "VersioningConfiguration.xmlns")
	sameShape(t, "s3.amazonaws.com", "PutBucketPolicy", params("PutBucketPolicy"), "bucketPolicy.Statement[].Sid", "bucketPolicy.Version", "policy")
	del := params("DeleteObjects")
	objs, _ := del["Delete"].(map[string]any)["Object"].([]any)
	if len(objs) != 2 || !slices.ContainsFunc(objs, func(o any) bool { return o.(map[string]any)["Key"] == "b" }) || del["delete"] != "" {
		t.Errorf("DeleteObjects params: %v", del)
	}
}

// The resources of real SSM records, derived from their requestParameters.
func TestSSMResourcesMatchRealRecords(t *testing.T) {
	svc := routes.Lookup("ssm")
	n := 0
	for _, name := range []string{"GetParameter", "GetParameters", "PutParameter", "DeleteParameter", "UpdateInstanceAssociationStatus", "PutInventory", "ListInstanceAssociations"} {
		for _, r := range realRecords(t, "ssm.amazonaws.com", name) {
			rs, _ := r["resources"].([]any)
			params, _ := r["requestParameters"].(map[string]any)
			if len(rs) == 0 || params == nil {
				continue
			}
			var want []string
			for _, x := range rs {
				want = append(want, str(x.(map[string]any)["ARN"]))
			}
			acct := str(r["recipientAccountId"])
			got := resources(&call{svc: svc, name: name}, acct, str(r["awsRegion"]), params, nil)
			var arns []string
			for _, g := range got {
				arns = append(arns, g.ARN)
				if g.Type != "" || g.AccountID != acct {
					t.Errorf("%s: resource %+v; want no type and account %s, as AWS writes them", name, g, acct)
				}
			}
			slices.Sort(want)
			slices.Sort(arns)
			if !slices.Equal(arns, want) {
				t.Errorf("%s: resources %v; real %v", name, arns, want)
			}
			n++
		}
	}
	if n < 50 {
		t.Errorf("compared %d real SSM records; want the ~200 with resources", n)
	}
}
