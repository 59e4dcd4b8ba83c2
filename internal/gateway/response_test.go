package gateway

import (
	"encoding/json"
	"net/http"
	"reflect"
	"testing"

	"github.com/cairn-audit/cairn/internal/gateway/routes"
)

// TestEC2RawResponsesAsRecorded: the EC2 operations AWS records as their
// response document give, from the XML EC2 answers, exactly the
// responseElements of their real records
// (testdata/real/invictus-ir-aws_dataset: CreateNatGateway in
// …T1200Z_x9kHmzMa7cx6l9wM, CreateFlowLogs in …T1205Z_UljXNp9xLp8nsAGc,
// DeleteFlowLogs in …T1205Z_SjF3IkuNXJkoHyar).
func TestEC2RawResponsesAsRecorded(t *testing.T) {
	ec2 := routes.Lookup("ec2")
	for _, c := range []struct{ name, xml, want string }{
		{"CreateNatGateway",
			`<CreateNatGatewayResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>98cac787-9654-4d84-9fbc-d42f1023e2ef</requestId><clientToken>86C58940-D407-4E02-A617-E40168CFDBE2</clientToken><natGateway><createTime>2023-07-10T11:55:14.000Z</createTime><natGatewayAddressSet><item><allocationId>eipalloc-08a083beb7e83dbc0</allocationId><isPrimary>true</isPrimary><status>associating</status></item></natGatewayAddressSet><natGatewayId>nat-03575abbac42080d9</natGatewayId><state>pending</state><subnetId>subnet-01ed430875cff578d</subnetId><vpcId>vpc-06fe1a64761a0f720</vpcId><connectivityType>public</connectivityType><tagSet><item><key>StratusRedTeam</key><value>true</value></item><item><key>Name</key><value>stratus-red-team-ec2-steal-credentials-vpc-us-east-1a</value></item></tagSet></natGateway></CreateNatGatewayResponse>`,
			`{"CreateNatGatewayResponse": {"xmlns": "http://ec2.amazonaws.com/doc/2016-11-15/", "natGateway": {"connectivityType": "public", "subnetId": "subnet-01ed430875cff578d", "tagSet": {"item": [{"value": true, "key": "StratusRedTeam"}, {"value": "stratus-red-team-ec2-steal-credentials-vpc-us-east-1a", "key": "Name"}]}, "natGatewayAddressSet": {"item": {"isPrimary": true, "allocationId": "eipalloc-08a083beb7e83dbc0", "status": "associating"}}, "createTime": "2023-07-10T11:55:14.000Z", "vpcId": "vpc-06fe1a64761a0f720", "natGatewayId": "nat-03575abbac42080d9", "state": "pending"}, "requestId": "98cac787-9654-4d84-9fbc-d42f1023e2ef", "clientToken": "86C58940-D407-4E02-A617-E40168CFDBE2"}}`},
		{"CreateFlowLogs",
			`<CreateFlowLogsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>353ea5d4-f889-46d4-a632-ed784656dda4</requestId><clientToken>oueUIFMk93wJinrrwc0QUGz+O0GaqjxHhhquvXQ1UQc=</clientToken><flowLogIdSet><item>fl-064ed3a785e4a37ef</item></flowLogIdSet><unsuccessful/></CreateFlowLogsResponse>`,
			`{"CreateFlowLogsResponse": {"xmlns": "http://ec2.amazonaws.com/doc/2016-11-15/", "requestId": "353ea5d4-f889-46d4-a632-ed784656dda4", "clientToken": "oueUIFMk93wJinrrwc0QUGz+O0GaqjxHhhquvXQ1UQc=", "unsuccessful": "", "flowLogIdSet": {"item": "fl-064ed3a785e4a37ef"}}}`},
		{"DeleteFlowLogs",
			`<DeleteFlowLogsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>bd26b4b4-133e-4610-8be1-9c5d645bb2ee</requestId><unsuccessful/></DeleteFlowLogsResponse>`,
			`{"DeleteFlowLogsResponse": {"xmlns": "http://ec2.amazonaws.com/doc/2016-11-15/", "requestId": "bd26b4b4-133e-4610-8be1-9c5d645bb2ee", "unsuccessful": ""}}`},
	} {
		st := &state{respHeader: http.Header{}}
		st.captured.WriteString(c.xml)
		got := responseElements(call{svc: ec2, op: ec2.Operation(c.name), name: c.name}, st, sensitiveSet(ec2))
		var g, w any
		if err := json.Unmarshal(got, &g); err != nil {
			t.Fatalf("%s: %s: %v", c.name, got, err)
		}
		_ = json.Unmarshal([]byte(c.want), &w)
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
}

// TestResourcesAsRealRecords: the resources member is written where AWS's
// records have one and left out where they have none: Lambda's management
// records have none (41 of 41 real Lambda records), its Invoke data events
// name the function; CreateBucket has none (5 of 5), other bucket calls
// name the bucket.
func TestResourcesAsRealRecords(t *testing.T) {
	lambda, s3 := routes.Lookup("lambda"), routes.Lookup("s3")
	for _, c := range []struct {
		c    call
		want []string
	}{
		{call{svc: lambda, name: "CreateFunction"}, nil},
		{call{svc: lambda, name: "GetFunction"}, nil},
		{call{svc: lambda, name: "UpdateFunctionCode"}, nil},
		{call{svc: lambda, name: "Invoke"}, []string{"AWS::Lambda::Function arn:aws:lambda:us-east-1:111111111111:function:f"}},
		{call{svc: s3, name: "CreateBucket", bucket: "b"}, nil},
		{call{svc: s3, name: "PutBucketPolicy", bucket: "b"}, []string{"AWS::S3::Bucket arn:aws:s3:::b"}},
	} {
		var got []string
		for _, r := range resources(&c.c, "111111111111", "us-east-1", map[string]any{"functionName": "f"}, nil) {
			got = append(got, r.Type+" "+r.ARN)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s %s: resources %q; want %q", c.c.svc.Name, c.c.name, got, c.want)
		}
	}
}

// TestTypedValuesStayJSON: values the model types as numbers become JSON
// numbers only when they are JSON's numbers (Go's parsers also take NaN,
// hex floats, +5, 007): else they stay strings and the record stays JSON.
func TestTypedValuesStayJSON(t *testing.T) {
	for text, number := range map[string]bool{"12": true, "-3": true, "1.5e3": true, "NaN": false, "Inf": false, "+5": false,
		"0x1p-2": false, "007": false, "": false, "1_000": false, " 1": false} {
		v := scalar(text, routes.Number, nil)
		if _, isNum := v.(json.Number); isNum != number {
			t.Errorf("scalar(%q, Number) = %#v; want a number: %v", text, v, number)
		}
		p := map[string]any{"maxCount": text}
		typeParams(p, "", routes.Lookup("ec2").InTypes, 0)
		if _, err := json.Marshal(p); err != nil {
			t.Errorf("typeParams(%q): %v", text, err)
		}
	}
}
