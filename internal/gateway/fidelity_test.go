package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/cairn-audit/cairn/internal/audit"
)

// shapePaths flattens a JSON value into its member paths and JSON types:
// {"a":{"b":[1]}} gives a:object, a.b:array, a.b[]:number. Only the kinds of
// the values matter, as a record's shape is what detection rules and
// parsers depend on.
func shapePaths(v any, p string, out map[string]string) {
	switch t := v.(type) {
	case map[string]any:
		if p != "" {
			out[p] = "object"
		}
		for k, x := range t {
			q := k
			if p != "" {
				q = p + "." + k
			}
			shapePaths(x, q, out)
		}
	case []any:
		out[p] = "array"
		for _, x := range t {
			shapePaths(x, p+"[]", out)
		}
	case string:
		out[p] = "string"
	case float64, json.Number:
		out[p] = "number"
	case bool:
		out[p] = "boolean"
	case nil:
		out[p] = "null"
	}
}

// shapeCheck compares a member of our record (requestParameters,
// responseElements, additionalEventData) with the same member of every
// successful real record of the operation in testdata/real: each of our
// paths must occur in some real record with the same type (extra lists
// paths the upstream adds that AWS's records may have but these do not),
// and each path every real record has must be in ours (missing lists those
// moto does not answer).
type shapeCheck struct {
	extra, missing []string
	// sent: the member is requestParameters, whose paths depend on what
	// the caller sent: only ours are checked against the real ones.
	sent bool
}

func (sc shapeCheck) check(t *testing.T, ev *audit.Event, member string, ours json.RawMessage) {
	t.Helper()
	var reals []map[string]any
	for _, r := range realRecords(t, ev.EventSource, ev.EventName) {
		if r["errorCode"] == nil {
			reals = append(reals, r)
		}
	}
	if len(reals) == 0 {
		t.Fatalf("%s %s: no successful real record to compare with", ev.EventSource, ev.EventName)
	}
	union := map[string]map[string]bool{}
	var common map[string]string
	for i, r := range reals {
		p := map[string]string{}
		shapePaths(r[member], "", p)
		for k, v := range p {
			if union[k] == nil {
				union[k] = map[string]bool{}
			}
			union[k][v] = true
		}
		if i == 0 {
			common = p
		}
		for k := range common {
			if _, ok := p[k]; !ok {
				delete(common, k)
			}
		}
	}
	var v any
	d := json.NewDecoder(bytes.NewReader(ours))
	d.UseNumber()
	if len(ours) > 0 {
		if err := d.Decode(&v); err != nil {
			t.Fatalf("%s %s: %v", ev.EventName, member, err)
		}
	}
	got := map[string]string{}
	shapePaths(v, "", got)
	under := func(p string, list []string) bool {
		return slices.ContainsFunc(list, func(x string) bool { return p == x || strings.HasPrefix(p, x+".") || strings.HasPrefix(p, x+"[]") })
	}
	var bad []string
	for p, typ := range got {
		if under(p, sc.extra) {
			continue
		}
		if u, ok := union[p]; !ok {
			bad = append(bad, "ours has "+p+" ("+typ+"), no real record has")
		} else if !u[typ] {
			bad = append(bad, "ours has "+p+" as "+typ+", real records as "+strings.Join(sortedKeys(u), "/"))
		}
	}
	for p := range common {
		if _, ok := got[p]; !ok && !under(p, sc.missing) && !sc.sent {
			bad = append(bad, "ours lacks "+p+", every real record has it")
		}
	}
	sort.Strings(bad)
	for _, b := range bad {
		t.Errorf("%s %s: %s\n  ours: %s", ev.EventName, member, b, ours)
	}
}

func sortedKeys(m map[string]bool) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// noAPIVersion: no real record of the services the gateway classifies
// carries apiVersion (testdata/real: 0 of 996 s3, 462 iam, 154 sts, 1063
// ec2, 268 kms, 638 ssm, 264 secretsmanager records).
func noAPIVersion(t *testing.T, ev *audit.Event) {
	t.Helper()
	if ev.APIVersion != "" {
		t.Errorf("%s: apiVersion %q; AWS writes none for %s", ev.EventName, ev.APIVersion, ev.EventSource)
	}
}

// TestFidelitySTSResponses: AWS records what STS issues though AssumeRole
// is read-only: credentials {accessKeyId, sessionToken, expiration} (no
// secret key) and assumedRoleUser {assumedRoleId, arn} (real:
// opensearch-catalog/raw-large-samples.json, invictus-ir-aws_dataset,
// nexthink: 114 AssumeRole records), GetFederationToken's credentials and
// federatedUser (datadog-stratus-red-team/aws.persistence.sts-federation-
// token.json); GetCallerIdentity's response is not recorded
// (traildiscover/GetCallerIdentity.json).
func TestFidelitySTSResponses(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cli := sts.NewFromConfig(e.cfg, func(o *sts.Options) { o.BaseEndpoint = aws.String(e.url) })
	if _, err := cli.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::111111111111:role/admin"),
		RoleSessionName: aws.String("s1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.GetFederationToken(ctx, &sts.GetFederationTokenInput{Name: aws.String("fed"),
		Policy: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.GetSessionToken(ctx, &sts.GetSessionTokenInput{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err != nil {
		t.Fatal(err)
	}
	// Unsigned, as the SDK sends it: still an STS call with its response
	// (AWS's user guide, "AssumeRoleWithWebIdentity" record example:
	// credentials, assumedRoleUser, subjectFromWebIdentityToken...).
	if _, err := cli.AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{RoleArn: aws.String("arn:aws:iam::111111111111:role/web"),
		RoleSessionName: aws.String("web"), WebIdentityToken: aws.String("eyJhbGciOiJIUzI1NiJ9.e30.x")}); err != nil {
		t.Fatal(err)
	}
	expiration := regexp.MustCompile(`^[A-Z][a-z]{2} \d{1,2}, \d{4}, \d{1,2}:\d{2}:\d{2} [AP]M$`)
	for _, n := range []string{"AssumeRole", "GetFederationToken", "GetSessionToken", "AssumeRoleWithWebIdentity"} {
		ev := e.rec.last(t, n)
		noAPIVersion(t, ev)
		var re struct {
			Credentials map[string]any `json:"credentials"`
		}
		if err := json.Unmarshal(ev.ResponseElements, &re); err != nil || re.Credentials == nil {
			t.Fatalf("%s: responseElements %s; want credentials", n, ev.ResponseElements)
		}
		if str(re.Credentials["accessKeyId"]) == "" || str(re.Credentials["sessionToken"]) == "" {
			t.Errorf("%s: credentials without accessKeyId or sessionToken: %s", n, ev.ResponseElements)
		}
		if _, ok := re.Credentials["secretAccessKey"]; ok {
			t.Errorf("%s: the secret key is recorded; AWS leaves it out: %s", n, ev.ResponseElements)
		}
		if x := str(re.Credentials["expiration"]); !expiration.MatchString(x) {
			t.Errorf("%s: expiration %q; AWS writes %q", n, x, "Nov 30, 2024, 8:43:17 PM")
		}
		if ev.EventSource != "sts.amazonaws.com" {
			t.Errorf("%s: eventSource %s", n, ev.EventSource)
		}
		if strings.Contains(string(ev.RequestParameters), "eyJhbGci") {
			t.Errorf("%s: the web identity token is recorded: %s", n, ev.RequestParameters)
		}
		if n == "AssumeRole" || n == "GetFederationToken" { // the others: no successful real record
			shapeCheck{}.check(t, ev, "responseElements", ev.ResponseElements)
		}
	}
	gci := e.rec.last(t, "GetCallerIdentity")
	if len(gci.ResponseElements) != 0 && string(gci.ResponseElements) != "null" {
		t.Errorf("GetCallerIdentity: responseElements %s; AWS records null", gci.ResponseElements)
	}
}

// TestFidelityS3Records: every real S3 record carries additionalEventData
// {SignatureVersion, CipherSuite, bytesTransferredIn, AuthenticationMethod,
// x-amz-id-2, bytesTransferredOut} (992 of 996; CreateBucket in
// invictus-ir-aws_dataset/…T1205Z_SjF3IkuNXJkoHyar.json.gz, ListBuckets
// in …T1145Z_s7dpHbl38neqZbm2.json.gz) with the byte counts as numbers;
// CreateBucket records have no resources (5 of 5); PutObject's
// requestParameters hold no Content-Length or checksum headers, and its
// responseElements the object's encryption (AWS's S3 user guide, "CloudTrail
// log file entries for Amazon S3": testdata/real has no data events).
// The gateway is reached over TLS, as AWS always is, so CipherSuite is
// written.
func TestFidelityS3Records(t *testing.T) {
	e := newTLSEnv(t)
	ctx := context.Background()
	cli := s3.NewFromConfig(e.cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(e.url)
		o.UsePathStyle = true
		o.HTTPClient = e.client
	})
	if _, err := cli.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("fidelity")}); err != nil {
		t.Fatal(err)
	}
	body := strings.Repeat("x", 1000)
	if _, err := cli.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("fidelity"), Key: aws.String("k"),
		Body: strings.NewReader(body), ServerSideEncryption: "AES256"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.ListBuckets(ctx, &s3.ListBucketsInput{}); err != nil {
		t.Fatal(err)
	}
	// The gateway's upstream (moto) sends no x-amz-id-2: AWS's S3 does.
	noID := shapeCheck{missing: []string{"x-amz-id-2"}}
	cb := e.rec.last(t, "CreateBucket")
	noID.check(t, cb, "additionalEventData", cb.AdditionalEventData)
	if len(cb.Resources) != 0 {
		t.Errorf("CreateBucket resources %+v; AWS records none", cb.Resources)
	}
	noAPIVersion(t, cb)
	lb := e.rec.last(t, "ListBuckets")
	noID.check(t, lb, "additionalEventData", lb.AdditionalEventData)
	var aed map[string]any
	_ = json.Unmarshal(lb.AdditionalEventData, &aed)
	if n, _ := aed["bytesTransferredOut"].(float64); n <= 0 {
		t.Errorf("ListBuckets bytesTransferredOut %v; want the response's length", aed["bytesTransferredOut"])
	}
	if cs := str(aed["CipherSuite"]); cs != "TLS_AES_128_GCM_SHA256" && cs != "TLS_AES_256_GCM_SHA384" && cs != "TLS_CHACHA20_POLY1305_SHA256" {
		t.Errorf("CipherSuite %q; want the TLS 1.3 suite's name", cs)
	}

	put := e.rec.last(t, "PutObject")
	var rp map[string]any
	_ = json.Unmarshal(put.RequestParameters, &rp)
	for k := range rp {
		lk := strings.ToLower(k)
		if lk == "content-length" || lk == "content-md5" || strings.HasPrefix(lk, "x-amz-checksum") || lk == "x-amz-sdk-checksum-algorithm" {
			t.Errorf("PutObject requestParameters has %q: %s", k, put.RequestParameters)
		}
	}
	if rp["x-amz-server-side-encryption"] != "AES256" || rp["bucketName"] != "fidelity" || rp["key"] != "k" {
		t.Errorf("PutObject requestParameters %s", put.RequestParameters)
	}
	var re map[string]any
	if err := json.Unmarshal(put.ResponseElements, &re); err != nil || re["x-amz-server-side-encryption"] != "AES256" {
		t.Errorf("PutObject responseElements %s; want the object's x-amz-server-side-encryption", put.ResponseElements)
	}
	_ = json.Unmarshal(put.AdditionalEventData, &aed)
	if aed["bytesTransferredIn"] != float64(len(body)) || aed["AuthenticationMethod"] != "AuthHeader" || aed["SignatureVersion"] != "SigV4" {
		t.Errorf("PutObject additionalEventData %s; want bytesTransferredIn %d", put.AdditionalEventData, len(body))
	}
	noAPIVersion(t, put)
}

// signedCall sends a request to the gateway signed with aws-sdk-go-v2's
// SigV4 signer (EC2, Secrets Manager and SSM clients are not in go.mod: the
// SDK signs what their clients would send) and returns the response body.
func signedCall(t *testing.T, e *env, service, contentType, target string, body string) []byte {
	t.Helper()
	r, err := http.NewRequest("POST", e.url+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", contentType)
	if target != "" {
		r.Header.Set("X-Amz-Target", target)
	}
	sum := sha256.Sum256([]byte(body))
	creds, _ := e.cfg.Credentials.Retrieve(context.Background())
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, r, hex.EncodeToString(sum[:]), service, "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s%s: %d %s", service, target, body, resp.StatusCode, b)
	}
	return b
}

func ec2Call(t *testing.T, e *env, params url.Values) []byte {
	t.Helper()
	params.Set("Version", "2016-11-15")
	return signedCall(t, e, "ec2", "application/x-www-form-urlencoded; charset=utf-8", "", params.Encode())
}

// TestFidelityEC2Responses: EC2's responseElements as the real records
// write them (invictus-ir-aws_dataset, plaso): requestId kept, "_return"
// a boolean, sets as {"items": [...]}, empty sets {}, numbers and booleans
// typed, timestamps in epoch milliseconds.
func TestFidelityEC2Responses(t *testing.T) {
	e := newEnv(t)
	var sg struct {
		GroupID string `xml:"groupId"`
	}
	if err := xml.Unmarshal(ec2Call(t, e, url.Values{"Action": {"CreateSecurityGroup"}, "GroupName": {"fid"}, "GroupDescription": {"d"}}), &sg); err != nil {
		t.Fatal(err)
	}
	ec2Call(t, e, url.Values{"Action": {"AuthorizeSecurityGroupIngress"}, "GroupId": {sg.GroupID},
		"IpPermissions.1.IpProtocol": {"tcp"}, "IpPermissions.1.FromPort": {"443"}, "IpPermissions.1.ToPort": {"443"},
		"IpPermissions.1.IpRanges.1.CidrIp": {"0.0.0.0/0"}, "IpPermissions.1.IpRanges.1.Description": {"TLS from Internet"}})
	var imgs struct {
		Images []string `xml:"imagesSet>item>imageId"`
	}
	if err := xml.Unmarshal(ec2Call(t, e, url.Values{"Action": {"DescribeImages"}}), &imgs); err != nil || len(imgs.Images) == 0 {
		t.Fatalf("no image to run: %v", err)
	}
	var run struct {
		Instances []string `xml:"instancesSet>item>instanceId"`
	}
	if err := xml.Unmarshal(ec2Call(t, e, url.Values{"Action": {"RunInstances"}, "ImageId": {imgs.Images[0]},
		"MinCount": {"1"}, "MaxCount": {"1"}, "InstanceType": {"t2.micro"}}), &run); err != nil || len(run.Instances) != 1 {
		t.Fatalf("RunInstances: %v", err)
	}
	ec2Call(t, e, url.Values{"Action": {"StopInstances"}, "InstanceId.1": {run.Instances[0]}})
	var vol struct {
		VolumeID string `xml:"volumeId"`
	}
	if err := xml.Unmarshal(ec2Call(t, e, url.Values{"Action": {"CreateVolume"}, "Size": {"1"}, "AvailabilityZone": {"us-east-1a"},
		"TagSpecification.1.ResourceType": {"volume"}, "TagSpecification.1.Tag.1.Key": {"Name"}, "TagSpecification.1.Tag.1.Value": {"v"}}), &vol); err != nil {
		t.Fatal(err)
	}
	ec2Call(t, e, url.Values{"Action": {"CreateSnapshot"}, "VolumeId": {vol.VolumeID},
		"TagSpecification.1.ResourceType": {"snapshot"}, "TagSpecification.1.Tag.1.Key": {"Name"}, "TagSpecification.1.Tag.1.Value": {"s"}})
	ec2Call(t, e, url.Values{"Action": {"DeleteSecurityGroup"}, "GroupId": {sg.GroupID}})
	// Recorded as its response document (traildiscover/CreateLaunchTemplate.json).
	ec2Call(t, e, url.Values{"Action": {"CreateLaunchTemplate"}, "LaunchTemplateName": {"TrailDiscoverTemplate"},
		"LaunchTemplateData.InstanceType": {"t2.micro"}})

	// What moto answers that AWS's records of these calls do not show,
	// or show differently (docs/compatibility.md): members of newer API
	// versions, and sizes AWS writes as strings.
	for _, c := range []struct {
		name string
		sc   shapeCheck
	}{
		// moto answers no <return> to Create/DeleteSecurityGroup.
		{"CreateSecurityGroup", shapeCheck{extra: []string{"securityGroupArn", "tagSet"}, missing: []string{"_return"}}},
		{"AuthorizeSecurityGroupIngress", shapeCheck{extra: []string{"securityGroupRuleSet.items[].tags", "securityGroupRuleSet.items[].cidrIpv4",
			"securityGroupRuleSet.items[].referencedGroupInfo", "securityGroupRuleSet.items[].tagSet", "securityGroupRuleSet.items[].prefixListId", "securityGroupRuleSet.items[].cidrIpv6"},
			missing: []string{"securityGroupRuleSet.items[].description", "securityGroupRuleSet.items[].groupOwnerId", "securityGroupRuleSet.items[].securityGroupRuleId"}}},
		{"RunInstances", shapeCheck{extra: []string{"instancesSet.items[]", "requesterId"}, missing: []string{"instancesSet.items[]"}}},
		{"StopInstances", shapeCheck{}},
		// AWS writes no empty attachmentSet; moto answers no iops or
		// multiAttachEnabled.
		{"CreateVolume", shapeCheck{missing: []string{"iops", "multiAttachEnabled"}, extra: []string{"attachmentSet", "tagSet.items[].value", "availabilityZoneId", "kmsKeyId", "snapshotId", "throughput", "iops", "sseType", "multiAttachEnabled", "volumeInitializationRate", "fastRestored", "operator"}}},
		{"CreateSnapshot", shapeCheck{extra: []string{"description", "kmsKeyId", "progress", "outpostArn", "completionTime", "transferType", "completionDurationMinutes", "availabilityZone", "storageTier", "restoreExpiryTime", "sseType", "fullSnapshotSizeInBytes", "ownerAlias", "dataEncryptionKeyId", "stateMessage"}}},
		{"DeleteSecurityGroup", shapeCheck{extra: []string{"groupId"}, missing: []string{"_return"}}},
		// moto answers no operator, and an empty tagSet.
		{"CreateLaunchTemplate", shapeCheck{missing: []string{"CreateLaunchTemplateResponse.launchTemplate.operator"},
			extra: []string{"CreateLaunchTemplateResponse.launchTemplate.tagSet"}}},
	} {
		ev := e.rec.last(t, c.name)
		noAPIVersion(t, ev)
		c.sc.check(t, ev, "responseElements", ev.ResponseElements)
		var re map[string]any
		_ = json.Unmarshal(ev.ResponseElements, &re)
		if doc, ok := re[c.name+"Response"].(map[string]any); ok {
			re = doc
		}
		if str(re["requestId"]) == "" {
			t.Errorf("%s: no requestId in %s", c.name, ev.ResponseElements)
		}
	}
	// requestParameters of query/EC2 calls typed from the model as AWS
	// records them (plaso's RunInstances: "minCount": 1, "maxCount": 1).
	for _, n := range []string{"RunInstances", "CreateVolume", "AuthorizeSecurityGroupIngress"} {
		ev := e.rec.last(t, n)
		shapeCheck{sent: true}.check(t, ev, "requestParameters", ev.RequestParameters)
	}
	// The types the exceptions above do not check.
	var run2 struct {
		InstancesSet struct {
			Items []struct {
				InstanceState struct{ Code json.Number } `json:"instanceState"`
				LaunchTime    json.Number                `json:"launchTime"`
				AmiLaunchIdx  json.Number                `json:"amiLaunchIndex"`
			} `json:"items"`
		} `json:"instancesSet"`
		GroupSet any `json:"groupSet"`
	}
	ri := e.rec.last(t, "RunInstances")
	if err := json.Unmarshal(ri.ResponseElements, &run2); err != nil || len(run2.InstancesSet.Items) != 1 {
		t.Fatalf("RunInstances responseElements %s: %v", ri.ResponseElements, err)
	}
	if it := run2.InstancesSet.Items[0]; it.InstanceState.Code == "" || it.LaunchTime == "" || it.AmiLaunchIdx == "" {
		t.Errorf("RunInstances: instanceState.code, launchTime, amiLaunchIndex not numbers: %s", ri.ResponseElements)
	}
}

// TestFidelityJSONResponses: JSON services' responseElements lower-camel
// at every depth with timestamps as AWS writes them, and secrets left out
// or hidden as AWS does: Secrets Manager CreateSecret/PutSecretValue record
// {"arn"} and no secretString (invictus-ir-aws_dataset …T1200Z_iLj9fb7yyUG9X4Bf);
// KMS keyMetadata.arn/keyId/creationDate (KMS developer guide's CreateKey
// record: no real one here); KMS Encrypt/Decrypt record the default
// encryptionAlgorithm and no plaintext/ciphertextBlob (188 Decrypt, 42
// Encrypt real records); IAM CreateAccessKey records no secretAccessKey and
// createDate as a date (…T1230Z_ZtUNbBkwAu98FPZb); SSM PutParameter's
// value is HIDDEN_DUE_TO_SECURITY_REASONS (…T1200Z_iLj9fb7yyUG9X4Bf).
func TestFidelityJSONResponses(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	secret := "s3cr3t-value"
	sm := signedCall(t, e, "secretsmanager", "application/x-amz-json-1.1", "secretsmanager.CreateSecret",
		`{"Name":"fid","SecretString":"`+secret+`","ClientRequestToken":"D796F4C4-6073-485E-B59D-DEA24780EE7A","Description":""}`)
	var created struct{ ARN string }
	_ = json.Unmarshal(sm, &created)
	signedCall(t, e, "secretsmanager", "application/x-amz-json-1.1", "secretsmanager.PutSecretValue",
		`{"SecretId":"`+created.ARN+`","SecretString":"`+secret+`2","ClientRequestToken":"9128BF7A-DA94-40C0-873D-BCDF8A4013DC"}`)
	signedCall(t, e, "ssm", "application/x-amz-json-1.1", "AmazonSSM.PutParameter",
		`{"Name":"/credentials/fid","Value":"`+secret+`","Type":"SecureString","Overwrite":false,"Tier":"Standard","Tags":[{"Key":"k","Value":"true"}]}`)
	for _, n := range []string{"CreateSecret", "PutSecretValue", "PutParameter"} {
		ev := e.rec.last(t, n)
		if strings.Contains(string(ev.RequestParameters), secret) {
			t.Errorf("%s: the secret is in requestParameters: %s", n, ev.RequestParameters)
		}
		// AWS records defaults the request did not send
		// (forceOverwriteReplicaSecret, allowedPattern): not yet.
		shapeCheck{extra: []string{"tags"}, missing: []string{"forceOverwriteReplicaSecret", "allowedPattern"}}.check(t, ev, "requestParameters", ev.RequestParameters)
		shapeCheck{}.check(t, ev, "responseElements", ev.ResponseElements)
		noAPIVersion(t, ev)
	}
	if pp := e.rec.last(t, "PutParameter"); !strings.Contains(string(pp.RequestParameters), `"value":"`+hidden+`"`) {
		t.Errorf("PutParameter: value not %s: %s", hidden, pp.RequestParameters)
	}

	k := kms.NewFromConfig(e.cfg, func(o *kms.Options) { o.BaseEndpoint = aws.String(e.url) })
	key, err := k.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("fid")})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := k.Encrypt(ctx, &kms.EncryptInput{KeyId: key.KeyMetadata.Arn, Plaintext: []byte(secret),
		EncryptionContext: map[string]string{"PARAMETER_ARN": "arn:aws:ssm:us-east-1:111111111111:parameter/x"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob,
		EncryptionContext: map[string]string{"PARAMETER_ARN": "arn:aws:ssm:us-east-1:111111111111:parameter/x"}}); err != nil {
		t.Fatal(err)
	}
	ck := e.rec.last(t, "CreateKey")
	var km struct {
		KeyMetadata map[string]any `json:"keyMetadata"`
	}
	if err := json.Unmarshal(ck.ResponseElements, &km); err != nil || km.KeyMetadata == nil {
		t.Fatalf("CreateKey responseElements %s", ck.ResponseElements)
	}
	for name := range km.KeyMetadata {
		if name != lowerFirst(name) {
			t.Errorf("CreateKey keyMetadata.%s: AWS writes member names lower-camel", name)
		}
	}
	if str(km.KeyMetadata["arn"]) != *key.KeyMetadata.Arn || str(km.KeyMetadata["keyId"]) != *key.KeyMetadata.KeyId {
		t.Errorf("CreateKey keyMetadata.arn/keyId: %s", ck.ResponseElements)
	}
	if d := str(km.KeyMetadata["creationDate"]); !regexp.MustCompile(`^[A-Z][a-z]{2} \d{1,2}, \d{4}, \d{1,2}:\d{2}:\d{2} [AP]M$`).MatchString(d) {
		t.Errorf("CreateKey keyMetadata.creationDate %q; AWS writes %q", d, "Jul 10, 2023, 12:07:59 PM")
	}
	noAPIVersion(t, ck)
	for _, n := range []string{"Encrypt", "Decrypt"} {
		ev := e.rec.last(t, n)
		shapeCheck{}.check(t, ev, "requestParameters", ev.RequestParameters)
		if string(ev.ResponseElements) != "" && string(ev.ResponseElements) != "null" {
			t.Errorf("%s: responseElements %s; AWS records null", n, ev.ResponseElements)
		}
	}

	im := iam.NewFromConfig(e.cfg, func(o *iam.Options) { o.BaseEndpoint = aws.String(e.url) })
	if _, err := im.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("fid")}); err != nil {
		t.Fatal(err)
	}
	if _, err := im.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("fid")}); err != nil {
		t.Fatal(err)
	}
	if _, err := im.CreateLoginProfile(ctx, &iam.CreateLoginProfileInput{UserName: aws.String("fid"), Password: aws.String(secret),
		PasswordResetRequired: true}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"CreateUser", "CreateAccessKey", "CreateLoginProfile"} {
		ev := e.rec.last(t, n)
		if strings.Contains(string(ev.RequestParameters), secret) || strings.Contains(string(ev.ResponseElements), "ecretAccessKey") {
			t.Errorf("%s: a secret is recorded: %s / %s", n, ev.RequestParameters, ev.ResponseElements)
		}
		// moto leaves out the empty permissionsBoundary/tags AWS omits too.
		shapeCheck{extra: []string{"user.tags", "user.permissionsBoundary"}, missing: []string{"passwordResetRequired"}}.check(t, ev, "responseElements", ev.ResponseElements)
		// Query parameters typed as AWS records them ("passwordResetRequired": false).
		shapeCheck{sent: true, extra: []string{"tags"}}.check(t, ev, "requestParameters", ev.RequestParameters)
		noAPIVersion(t, ev)
	}
}

// tlsEnv is an env whose gateway serves TLS (as AWS's endpoints do), with
// a client that trusts it.
type tlsEnv struct {
	*env
	client *http.Client
}

func newTLSEnv(t *testing.T) *tlsEnv {
	t.Helper()
	e := newEnv(t)
	srv := httptest.NewTLSServer(e.gw)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return &tlsEnv{env: e, client: srv.Client()}
}
