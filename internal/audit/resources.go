package audit

import (
	"strings"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// ResourceRule is one rule by which LookupEvents derives the Resources of a
// record that carries no resources member, as CloudTrail's Event History
// derives them from requestParameters and responseElements: a management
// event of Source that is not read-only names a resource of Type for each
// string found at one of Paths (ResourceRules lists them). A path is
// dotted member names from the record's top ("requestParameters.userName"),
// "[]" stepping into every element of an array
// ("responseElements.instancesSet.items[].instanceId").
type ResourceRule struct {
	Source string
	Type   string
	Paths  []string
}

// resourceRules are the rules, checked against AWS's LookupEvents answers
// where one is published (plaso's test data: RunInstances,
// CreateSecurityGroup, StopInstances, TerminateInstances; DescribeInstances,
// a read, has none) and against the members of the real records of
// testdata/real otherwise. docs/compatibility.md lists them.
var resourceRules = []ResourceRule{
	{"iam.amazonaws.com", "AWS::IAM::User", []string{"requestParameters.userName", "responseElements.user.userName"}},
	{"iam.amazonaws.com", "AWS::IAM::Role", []string{"requestParameters.roleName", "responseElements.role.roleName"}},
	{"iam.amazonaws.com", "AWS::IAM::Group", []string{"requestParameters.groupName", "responseElements.group.groupName"}},
	{"iam.amazonaws.com", "AWS::IAM::Policy", []string{"requestParameters.policyArn", "responseElements.policy.arn"}},
	{"iam.amazonaws.com", "AWS::IAM::AccessKey", []string{"requestParameters.accessKeyId", "responseElements.accessKey.accessKeyId"}},
	{"iam.amazonaws.com", "AWS::IAM::InstanceProfile", []string{"requestParameters.instanceProfileName", "responseElements.instanceProfile.instanceProfileName"}},
	{"s3.amazonaws.com", "AWS::S3::Bucket", []string{"requestParameters.bucketName"}},
	{"ec2.amazonaws.com", "AWS::EC2::VPC", []string{"requestParameters.vpcId", "responseElements.vpc.vpcId", "responseElements.instancesSet.items[].vpcId"}},
	{"ec2.amazonaws.com", "AWS::EC2::Ami", []string{"requestParameters.imageId", "requestParameters.instancesSet.items[].imageId", "responseElements.imageId"}},
	{"ec2.amazonaws.com", "AWS::EC2::NetworkInterface", []string{"requestParameters.networkInterfaceId", "responseElements.networkInterface.networkInterfaceId",
		"responseElements.instancesSet.items[].networkInterfaceSet.items[].networkInterfaceId"}},
	{"ec2.amazonaws.com", "AWS::EC2::Instance", []string{"requestParameters.instanceId", "requestParameters.instancesSet.items[].instanceId",
		"responseElements.instancesSet.items[].instanceId"}},
	{"ec2.amazonaws.com", "AWS::EC2::KeyPair", []string{"requestParameters.keyName", "requestParameters.instancesSet.items[].keyName"}},
	{"ec2.amazonaws.com", "AWS::EC2::SecurityGroup", []string{"requestParameters.groupName", "requestParameters.groupId", "responseElements.groupId",
		"responseElements.instancesSet.items[].groupSet.items[].groupName", "responseElements.instancesSet.items[].groupSet.items[].groupId"}},
	{"ec2.amazonaws.com", "AWS::EC2::Subnet", []string{"requestParameters.subnetId", "responseElements.subnet.subnetId", "responseElements.instancesSet.items[].subnetId"}},
	{"ec2.amazonaws.com", "AWS::EC2::Volume", []string{"requestParameters.volumeId", "responseElements.volumeId"}},
	{"ec2.amazonaws.com", "AWS::EC2::Snapshot", []string{"requestParameters.snapshotId", "responseElements.snapshotId"}},
	{"lambda.amazonaws.com", "AWS::Lambda::Function", []string{"requestParameters.functionName", "responseElements.functionName"}},
	{"kms.amazonaws.com", "AWS::KMS::Key", []string{"requestParameters.keyId", "responseElements.keyMetadata.arn"}},
	{"secretsmanager.amazonaws.com", "AWS::SecretsManager::Secret", []string{"requestParameters.secretId", "requestParameters.name", "responseElements.arn"}},
	{"cloudtrail.amazonaws.com", "AWS::CloudTrail::Trail", []string{"requestParameters.name", "requestParameters.trailName"}},
}

// ResourceRules returns the rules DeriveResources applies (a copy).
func ResourceRules() []ResourceRule { return append([]ResourceRule(nil), resourceRules...) }

// sourceRules are resourceRules by source, their paths split once.
var sourceRules = func() map[string][]splitRule {
	m := map[string][]splitRule{}
	for _, r := range resourceRules {
		sr := splitRule{typ: r.Type}
		for _, p := range r.Paths {
			sr.paths = append(sr.paths, strings.Split(p, "."))
		}
		m[r.Source] = append(m[r.Source], sr)
	}
	return m
}()

type splitRule struct {
	typ   string
	paths [][]string
}

// derivesResources reports whether a record of source may have derived
// resources.
func derivesResources(source string, readOnly Tri) bool {
	return readOnly != True && sourceRules[source] != nil
}

// DeriveResources returns the Resources LookupEvents reports for a record
// that carries no resources member: those ResourceRules find in its
// requestParameters and responseElements (the value as recorded is the
// ResourceName; an ARN is kept as ARN too). A read-only record has none.
func DeriveResources(source string, readOnly Tri, requestParameters, responseElements []byte) []Resource {
	if !derivesResources(source, readOnly) {
		return nil
	}
	var p derivedView
	for _, x := range []struct {
		raw []byte
		to  *any
	}{{requestParameters, &p.RequestParameters}, {responseElements, &p.ResponseElements}} {
		var v any
		if len(x.raw) > 0 && x.raw[0] == '{' && json.Unmarshal(x.raw, &v, lenient) == nil {
			*x.to = v
		}
	}
	return deriveFrom(source, &p)
}

// derivedView is what derived resources are read from: a record's
// requestParameters and responseElements, decoded in the one pass that
// reads them (AddDerivedResources), and whether it has a resources member.
type derivedView struct {
	RequestParameters any            `json:"requestParameters"`
	ResponseElements  any            `json:"responseElements"`
	Resources         jsontext.Value `json:"resources"`
}

// deriveFrom applies source's rules to p (see DeriveResources).
func deriveFrom(source string, p *derivedView) []Resource {
	top := map[string]any{}
	if m, ok := p.RequestParameters.(map[string]any); ok {
		top["requestParameters"] = m
	}
	if m, ok := p.ResponseElements.(map[string]any); ok {
		top["responseElements"] = m
	}
	if len(top) == 0 {
		return nil
	}
	var out []Resource
	seen := map[[2]string]bool{}
	for _, rule := range sourceRules[source] {
		for _, path := range rule.paths {
			valuesAt(top, path, 0, func(s string) {
				if s == "" || len(s) > 2048 || seen[[2]string{rule.typ, s}] {
					return
				}
				seen[[2]string{rule.typ, s}] = true
				r := Resource{Type: rule.typ, Name: s}
				if strings.HasPrefix(s, "arn:") {
					r.ARN = s
				}
				out = append(out, r)
			})
		}
	}
	return out
}

// valuesAt calls f with every string at path under v.
func valuesAt(v any, path []string, depth int, f func(string)) {
	if depth > 16 {
		return
	}
	if len(path) == 0 {
		if s, ok := v.(string); ok {
			f(s)
		}
		return
	}
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	name, each := strings.CutSuffix(path[0], "[]")
	x := m[name]
	if !each {
		valuesAt(x, path[1:], depth+1, f)
		return
	}
	if xs, ok := x.([]any); ok {
		for _, e := range xs {
			valuesAt(e, path[1:], depth+1, f)
		}
	}
}
