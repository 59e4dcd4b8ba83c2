package audit

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func selRecord(t *testing.T, source, name string, readOnly string, extra string) Record {
	t.Helper()
	ro := ""
	if readOnly != "" {
		ro = `,"readOnly":` + readOnly
	}
	raw := fmt.Sprintf(`{"eventVersion":"1.11","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::111111111111:user/alice","accountId":"111111111111"},"eventTime":"2026-11-25T08:00:00Z","eventSource":%q,"eventName":%q,"awsRegion":"us-east-1","eventID":"e"%s,"eventType":"AwsApiCall","recipientAccountId":"111111111111"%s}`,
		source, name, ro, extra)
	r, err := Extract([]byte(raw))
	if err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return r
}

func fs(field string, op string, vals ...string) FieldSelector {
	f := FieldSelector{Field: field}
	switch op {
	case "Equals":
		f.Equals = vals
	case "StartsWith":
		f.StartsWith = vals
	case "EndsWith":
		f.EndsWith = vals
	case "NotEquals":
		f.NotEquals = vals
	case "NotStartsWith":
		f.NotStartsWith = vals
	case "NotEndsWith":
		f.NotEndsWith = vals
	}
	return f
}

func sel(fields ...FieldSelector) AdvancedSelector { return AdvancedSelector{FieldSelectors: fields} }

var mgmt = fs("eventCategory", "Equals", "Management")
var dataCat = fs("eventCategory", "Equals", "Data")

// TestMatchAny: the semantics of facts §7.1/§7.3, and the cases of trail's
// TestSelects and Lake's store selection, on the same records.
func TestMatchAny(t *testing.T) {
	const s3Data = `,"eventCategory":"Data","managementEvent":false,"resources":[{"type":"AWS::S3::Object","ARN":"arn:aws:s3:::bkt/logs/a.txt"},{"type":"AWS::S3::Bucket","ARN":"arn:aws:s3:::bkt"}]`
	recs := []Record{
		selRecord(t, "ec2.amazonaws.com", "DescribeInstances", "true", ""),                                        // 0 management read
		selRecord(t, "ec2.amazonaws.com", "RunInstances", "false", ""),                                            // 1 management write
		selRecord(t, "kms.amazonaws.com", "Decrypt", "true", `,"sessionCredentialFromConsole":"true"`),            // 2 kms, console
		selRecord(t, "iam.amazonaws.com", "CreateUser", "false", `,"errorCode":"AccessDenied"`),                   // 3 iam, failed
		selRecord(t, "s3.amazonaws.com", "GetObject", "true", s3Data),                                             // 4 S3 data
		selRecord(t, "s3.amazonaws.com", "PutObject", "false", strings.Replace(s3Data, "logs/a.txt", "x.log", 1)), // 5 S3 data write, .log
		selRecord(t, "cloudtrail.amazonaws.com", "LookupEvents", "", `,"vpcEndpointId":"vpce-1"`),                 // 6 no readOnly
		selRecord(t, "ec2.amazonaws.com", "RunInstances", "false", `,"eventType":"AwsCloudTrailInsight","eventCategory":"Insight","insightDetails":{"state":"Start","eventSource":"ec2.amazonaws.com","eventName":"RunInstances","insightType":"ApiCallRateInsight"}`), // 7 insight
	}
	for _, c := range []struct {
		name string
		sels []AdvancedSelector
		want []bool // per record of recs
	}{
		{"none", nil, []bool{false, false, false, false, false, false, false, false}},
		{"all management (Lake's default)", []AdvancedSelector{sel(mgmt)}, []bool{true, true, true, true, false, false, true, false}},
		{"management writes except iam (trail)", []AdvancedSelector{sel(mgmt, fs("readOnly", "Equals", "false"), fs("eventSource", "NotEquals", "iam.amazonaws.com"))},
			[]bool{false, true, false, false, false, false, false, false}},
		{"management without kms (facts §7.3)", []AdvancedSelector{sel(mgmt, fs("eventSource", "NotEquals", "kms.amazonaws.com"))},
			[]bool{true, true, false, true, false, false, true, false}},
		{"S3 objects by ARN prefix, not .log (trail)", []AdvancedSelector{sel(dataCat, fs("resources.type", "Equals", "AWS::S3::Object"),
			fs("resources.ARN", "StartsWith", "arn:aws:s3:::bkt/"), fs("resources.ARN", "NotEndsWith", ".log"))},
			// Each condition holds for any resource: the bucket's ARN
			// satisfies NotEndsWith for record 5 (as in trail and Lake).
			[]bool{false, false, false, false, true, true, false, false}},
		{"one condition with two operators (AND)", []AdvancedSelector{sel(dataCat, FieldSelector{Field: "resources.ARN", StartsWith: []string{"arn:aws:s3:::bkt/"}, NotEndsWith: []string{".log"}})},
			[]bool{false, false, false, false, true, false, false, false}},
		{"S3 writes (facts example)", []AdvancedSelector{sel(mgmt), sel(dataCat, fs("resources.type", "Equals", "AWS::S3::Object"),
			fs("readOnly", "Equals", "false"), fs("resources.ARN", "StartsWith", "arn:aws:s3:::bkt/"))},
			[]bool{true, true, true, true, false, true, true, false}},
		{"values within an operator are ORed", []AdvancedSelector{sel(mgmt, fs("eventName", "Equals", "CreateUser", "Decrypt"))},
			[]bool{false, false, true, true, false, false, false, false}},
		{"EndsWith and NotStartsWith", []AdvancedSelector{sel(mgmt, fs("eventName", "EndsWith", "Instances"), fs("eventName", "NotStartsWith", "Run"))},
			[]bool{true, false, false, false, false, false, false, false}},
		{"readOnly true leaves out records without readOnly", []AdvancedSelector{sel(mgmt, fs("readOnly", "Equals", "true"))},
			[]bool{true, false, true, false, false, false, false, false}},
		{"errorCode, from the raw record", []AdvancedSelector{sel(mgmt, fs("errorCode", "Equals", "AccessDenied"))},
			[]bool{false, false, false, true, false, false, false, false}},
		{"no errorCode satisfies no condition, negative ones included", []AdvancedSelector{sel(mgmt, fs("errorCode", "NotEquals", "AccessDenied"))},
			[]bool{false, false, false, false, false, false, false, false}},
		{"userIdentity.arn", []AdvancedSelector{sel(mgmt, fs("userIdentity.arn", "StartsWith", "arn:aws:iam::111111111111:user/"))},
			[]bool{true, true, true, true, false, false, true, false}},
		{"sessionCredentialFromConsole", []AdvancedSelector{sel(mgmt, fs("sessionCredentialFromConsole", "Equals", "true"))},
			[]bool{false, false, true, false, false, false, false, false}},
		{"vpcEndpointId and eventType", []AdvancedSelector{sel(mgmt, fs("vpcEndpointId", "Equals", "vpce-1"), fs("eventType", "Equals", "AwsApiCall"))},
			[]bool{false, false, false, false, false, false, true, false}},
		{"Insight store", []AdvancedSelector{sel(fs("eventCategory", "Equals", "Insight"))},
			[]bool{false, false, false, false, false, false, false, true}},
		// The disagreement issue 12 names: Lake took every record for a
		// field it did not know, trail none. Such selectors are refused
		// by ValidateSelectors; unvalidated, they fail closed.
		{"unknown field matches nothing", []AdvancedSelector{sel(mgmt, fs("userName", "Equals", "alice"))},
			[]bool{false, false, false, false, false, false, false, false}},
		{"unknown field with only a negative operator matches nothing", []AdvancedSelector{sel(mgmt, fs("nosuch", "NotEquals", "x"))},
			[]bool{false, false, false, false, false, false, false, false}},
	} {
		for i := range recs {
			if got := MatchAny(c.sels, &recs[i]); got != c.want[i] {
				t.Errorf("%s: MatchAny(record %d: %s %s %s) = %v; want %v", c.name, i, recs[i].EventSource, recs[i].EventName, recs[i].Category, got, c.want[i])
			}
		}
		if len(c.sels) == 1 {
			for i := range recs {
				if got := c.sels[0].Matches(&recs[i]); got != c.want[i] {
					t.Errorf("%s: Matches(record %d) = %v; want %v", c.name, i, got, c.want[i])
				}
			}
		}
	}
}

// A resource without an ARN gives resources.ARN no value: it cannot slip
// a record past a negative condition on the other resources' ARNs.
func TestResourceWithoutARN(t *testing.T) {
	r := selRecord(t, "s3.amazonaws.com", "GetObject", "true", `,"eventCategory":"Data","resources":[{"type":"AWS::S3::Object","ARN":"arn:aws:s3:::secret/k"},{"type":"AWS::S3::Bucket","accountId":"111111111111"}]`)
	s := sel(dataCat, fs("resources.ARN", "NotStartsWith", "arn:aws:s3:::secret/"))
	if s.Matches(&r) {
		t.Errorf("Matches = true; want the secret object's record left out")
	}
}

func TestValidateSelectors(t *testing.T) {
	long := strings.Repeat("a", 2049)
	many := make([]string, 501)
	for i := range many {
		many[i] = fmt.Sprint("e", i)
	}
	bad := []struct {
		name   string
		sels   []AdvancedSelector
		target SelectorTarget
	}{
		{"no field selector", []AdvancedSelector{{}}, ForTrail},
		{"no eventCategory", []AdvancedSelector{sel(fs("eventName", "Equals", "x"))}, ForTrail},
		{"eventCategory without a value", []AdvancedSelector{sel(FieldSelector{Field: "eventCategory"})}, ForTrail},
		{"empty value", []AdvancedSelector{sel(fs("eventCategory", "Equals", ""))}, ForTrail},
		{"value too long", []AdvancedSelector{sel(mgmt, fs("eventName", "Equals", long))}, ForEventDataStore},
		{"unknown field (trail)", []AdvancedSelector{sel(mgmt, fs("userName", "Equals", "x"))}, ForTrail},
		{"unknown field (store)", []AdvancedSelector{sel(mgmt, fs("userName", "Equals", "x"))}, ForEventDataStore},
		{"unknown field, negative only", []AdvancedSelector{sel(mgmt, fs("nosuch", "NotEquals", "x"))}, ForEventDataStore},
		{"field with a space", []AdvancedSelector{sel(fs("event Category", "Equals", "Data"))}, ForTrail},
		{"empty field", []AdvancedSelector{sel(mgmt, fs("", "Equals", "x"))}, ForTrail},
		{"readOnly StartsWith", []AdvancedSelector{sel(mgmt, fs("readOnly", "StartsWith", "t"))}, ForTrail},
		{"readOnly value", []AdvancedSelector{sel(mgmt, fs("readOnly", "Equals", "yes"))}, ForTrail},
		{"resources.type NotEquals", []AdvancedSelector{sel(dataCat, fs("resources.type", "NotEquals", "AWS::S3::Object"))}, ForTrail},
		{"eventCategory NotEquals", []AdvancedSelector{sel(fs("eventCategory", "NotEquals", "Data"))}, ForTrail},
		{"Lake-only category on a trail", []AdvancedSelector{sel(fs("eventCategory", "Equals", "ActivityAuditLog"))}, ForTrail},
		{"unknown category", []AdvancedSelector{sel(fs("eventCategory", "Equals", "Everything"))}, ForEventDataStore},
		{"two categories in one condition (store)", []AdvancedSelector{sel(fs("eventCategory", "Equals", "Management", "Data"))}, ForEventDataStore},
		{"two kinds in one store", []AdvancedSelector{sel(mgmt), sel(fs("eventCategory", "Equals", "Insight"))}, ForEventDataStore},
		{"six store selectors", []AdvancedSelector{sel(mgmt), sel(mgmt), sel(mgmt), sel(mgmt), sel(mgmt), sel(mgmt)}, ForEventDataStore},
		{"name too long", []AdvancedSelector{{Name: strings.Repeat("n", 1001), FieldSelectors: []FieldSelector{mgmt}}}, ForTrail},
		{"501 values", []AdvancedSelector{sel(mgmt, fs("eventName", "Equals", many...))}, ForTrail},
	}
	for _, c := range bad {
		if err := ValidateSelectors(c.sels, c.target); ErrorCode(err) != "InvalidEventSelectors" {
			t.Errorf("%s: ValidateSelectors = %v; want InvalidEventSelectors", c.name, err)
		}
	}
	good := []struct {
		name   string
		sels   []AdvancedSelector
		target SelectorTarget
	}{
		{"none", nil, ForTrail},
		{"management", []AdvancedSelector{sel(mgmt)}, ForEventDataStore},
		{"management and data in one store", []AdvancedSelector{sel(mgmt), sel(dataCat, fs("resources.type", "Equals", "AWS::S3::Object"))}, ForEventDataStore},
		{"network activity", []AdvancedSelector{sel(fs("eventCategory", "Equals", "NetworkActivity"), fs("eventSource", "Equals", "s3.amazonaws.com"), fs("errorCode", "Equals", "VpceAccessDenied"))}, ForTrail},
		{"every field", []AdvancedSelector{sel(dataCat, fs("resources.type", "Equals", "AWS::S3::Object"), fs("readOnly", "Equals", "false"),
			fs("eventName", "NotStartsWith", "Get"), fs("resources.ARN", "StartsWith", "arn:aws:s3:::b/"), fs("eventSource", "EndsWith", ".com"),
			fs("eventType", "Equals", "AwsApiCall"), fs("sessionCredentialFromConsole", "NotEquals", "true"), fs("userIdentity.arn", "NotEndsWith", "/root"),
			fs("vpcEndpointId", "NotEquals", "vpce-1"))}, ForTrail},
		{"channel store", []AdvancedSelector{sel(fs("eventCategory", "Equals", "ActivityAuditLog"))}, ForEventDataStore},
		{"500 values", []AdvancedSelector{sel(mgmt, fs("eventName", "Equals", many[:499]...))}, ForTrail},
		{"name of 1000", []AdvancedSelector{{Name: strings.Repeat("n", 1000), FieldSelectors: []FieldSelector{mgmt}}}, ForEventDataStore},
	}
	for _, c := range good {
		if err := ValidateSelectors(c.sels, c.target); err != nil {
			t.Errorf("%s: ValidateSelectors = %v; want nil", c.name, err)
		}
	}
}

// The JSON of a selector is AWS's, and reads what trail's and Lake's
// selector types wrote (pointer members: null Name, Field).
func TestSelectorJSON(t *testing.T) {
	in := `[{"Name":"s3","FieldSelectors":[{"Field":"eventCategory","Equals":["Data"]},{"Field":"resources.ARN","StartsWith":["arn:aws:s3:::b/"],"NotEndsWith":[".log"]}]},{"FieldSelectors":[{"Field":"eventCategory","Equals":["Management"]}]}]`
	var sels []AdvancedSelector
	if err := json.Unmarshal([]byte(in), &sels); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(sels)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != in {
		t.Errorf("JSON round trip:\n got %s\nwant %s", out, in)
	}
}
