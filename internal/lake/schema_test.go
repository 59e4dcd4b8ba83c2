package lake

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/cairn-audit/cairn/internal/lake/engine"
)

// schemaRecord is a record with the fields the Lake schema cases read.
const schemaRecord = `{"eventVersion":"1.09","userIdentity":{"type":"AssumedRole","principalId":"AROAEXAMPLE:s","arn":"arn:aws:sts::111111111111:assumed-role/r/s",` +
	`"accountId":"111111111111","accessKeyId":"ASIAEXAMPLE","sessionContext":{"sessionIssuer":{"type":"Role","principalId":"AROAEXAMPLE",` +
	`"arn":"arn:aws:iam::111111111111:role/r","accountId":"111111111111","userName":"r"},"attributes":{"creationDate":"2023-06-07T23:59:12Z","mfaAuthenticated":"true"}}},` +
	`"eventTime":"2024-01-02T03:04:05Z","eventSource":"s3.amazonaws.com","eventName":"PutBucketTagging","awsRegion":"us-east-1",` +
	`"requestParameters":{"bucketName":"b","Tagging":{"TagSet":{"Tag":{"Key":"k","Value":"v"}}},"tagging":""},` +
	`"eventID":"5d2c8a40-0000-4000-8000-000000000001","readOnly":false,"resources":[{"accountId":"111111111111","type":"AWS::S3::Bucket","ARN":"arn:aws:s3:::b"},` +
	`{"type":"AWS::S3::Object","ARN":"arn:aws:s3:::b/k"}],"recipientAccountId":"111111111111","vpcEndpointId":"vpce-1","vpcEndpointAccountId":"222222222222",` +
	`"eventCategory":"Management"}`

// configItemRecord is an AWS Config configuration item as a Lake store of
// eventCategory ConfigurationItem holds it (AWS's schema: eventtype
// AwsConfigurationItem, the item's fields under eventdata).
const configItemRecord = `{"eventVersion":"1.09","eventCategory":"ConfigurationItem","eventType":"AwsConfigurationItem",` +
	`"eventID":"5d2c8a40-0000-4000-8000-000000000002","eventTime":"2024-01-02T03:04:05Z","awsRegion":"us-east-1","recipientAccountId":"111111111111",` +
	`"eventData":{"configurationItemVersion":"1.3","configurationItemCaptureTime":"2024-01-02T03:04:05.000Z","configurationItemStatus":"OK",` +
	`"configurationStateId":"1704164645000","accountId":"111111111111","resourceType":"AWS::EC2::Instance","resourceId":"i-0abc","resourceName":"web",` +
	`"ARN":"arn:aws:ec2:us-east-1:111111111111:instance/i-0abc","awsRegion":"us-east-1","availabilityZone":"us-east-1a",` +
	`"configuration":{"instanceType":"t3.micro","state":{"name":"running"}},"supplementaryConfiguration":{},` +
	`"relationships":[{"resourceType":"AWS::EC2::VPC","resourceId":"vpc-1","name":"Is contained in Vpc"}],"tags":{"Name":"web"}}}`

// TestLakeSchemaAsAWS checks the columns and values of AWS's Lake schema
// for CloudTrail events and configuration items
// (https://docs.aws.amazon.com/awscloudtrail/latest/userguide/
// query-supported-event-schemas.html): creationDate is a timestamp,
// eventJsonChecksum and vpcEndpointAccountId are columns, a configuration
// item's fields are under eventData; cells read as Lake answers them,
// Trino's text of the value: timestamps 'YYYY-MM-DD HH:MM:SS.mmm' as in
// AWS's result examples (query-lake-examples.html), ROW cells as
// {field=value, ...} with lower-case names and null, as a Lake
// GetQueryResults userIdentity cell reads (docs/lake.md, "Values"), MAP
// cells {key=value} and arrays [a, b] as Trino renders them; CROSS JOIN
// UNNEST(resources), the Trino idiom, runs.
func TestLakeSchemaAsAWS(t *testing.T) {
	for _, kind := range engines {
		t.Run(kind, func(t *testing.T) { testLakeSchemaAsAWS(t, kind) })
	}
}

func testLakeSchemaAsAWS(t *testing.T, kind string) {
	h := newHostileOn(t, kind)
	ctx := context.Background()
	if err := h.l.eng.Insert(ctx, []engine.Row{{Store: h.idA2, Raw: []byte(schemaRecord)}, {Store: h.idA2, Raw: []byte(configItemRecord)}}, 0); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ expr, want string }{
		{`userIdentity.sessionContext.attributes.creationDate`, "2023-06-07 23:59:12.000"},
		{`date_diff('day', userIdentity.sessionContext.attributes.creationDate, eventTime)`, "208"},
		{`userIdentity.sessionContext.attributes.creationDate < TIMESTAMP '2023-06-08 00:00:00'`, "true"},
		{`vpcEndpointAccountId`, "222222222222"},
		{`length(eventJsonChecksum)`, "64"},
		{`requestParameters`, `{bucketName=b, Tagging={"TagSet":{"Tag":{"Key":"k","Value":"v"}}}, tagging=}`},
		{`element_at(requestParameters, 'Tagging')`, `{"TagSet":{"Tag":{"Key":"k","Value":"v"}}}`},
		{`userIdentity.sessionContext`, `{attributes={creationdate=2023-06-07 23:59:12.000, mfaauthenticated=true}, ` +
			`sessionissuer={type=Role, principalid=AROAEXAMPLE, arn=arn:aws:iam::111111111111:role/r, accountid=111111111111, username=r}, ` +
			`webidfederationdata=null, sourceidentity=null, ec2roledelivery=null, ec2issuedinvpc=null}`},
		{`resources`, `[{accountid=111111111111, type=AWS::S3::Bucket, arn=arn:aws:s3:::b, arnprefix=null}, {accountid=null, type=AWS::S3::Object, arn=arn:aws:s3:::b/k, arnprefix=null}]`},
		{`map_keys(requestParameters)`, `[bucketName, Tagging, tagging]`},
	} {
		stmt := `SELECT ` + c.expr + ` FROM ` + h.idA2 + ` WHERE eventName = 'PutBucketTagging'`
		res, err := h.l.Query(ctx, acctA, stmt)
		if err != nil {
			t.Errorf("%s: %v", stmt, err)
			continue
		}
		if len(res.Rows) != 1 || res.Rows[0][0] == nil {
			t.Errorf("%s: %v; want one value", stmt, res.Rows)
			continue
		}
		if got := *res.Rows[0][0]; got != c.want {
			t.Errorf("%s = %q; want %q", c.expr, got, c.want)
		}
	}
	res, err := h.l.Query(ctx, acctA, `SELECT eventJsonChecksum FROM `+h.idA2+` WHERE eventName = 'PutBucketTagging'`)
	if err != nil || len(res.Rows) != 1 || !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(*res.Rows[0][0]) {
		t.Errorf("eventJsonChecksum: %v, %v", res, err)
	}
	for _, c := range []struct{ expr, want string }{
		{`eventData.resourceType`, "AWS::EC2::Instance"},
		{`eventData.configurationItemStatus`, "OK"},
		{`eventData.configurationStateId`, "1704164645000"},
		{`element_at(eventData.configuration, 'instanceType')`, "t3.micro"},
		{`element_at(eventData.configuration, 'state')`, `{"name":"running"}`},
		{`eventData.relationships[1].resourceId`, "vpc-1"},
		{`eventData.tags`, "{Name=web}"},
		{`eventType`, "AwsConfigurationItem"},
	} {
		stmt := `SELECT ` + c.expr + ` FROM ` + h.idA2 + ` WHERE eventCategory = 'ConfigurationItem'`
		res, err := h.l.Query(ctx, acctA, stmt)
		if err != nil || len(res.Rows) != 1 || res.Rows[0][0] == nil {
			t.Errorf("%s: %v, %v; want one value", stmt, res, err)
			continue
		}
		if got := *res.Rows[0][0]; got != c.want {
			t.Errorf("%s = %q; want %q", c.expr, got, c.want)
		}
	}
	// Column names as Trino gives them: an unaliased expression is _colN
	// (AWS's sample "Find all CloudTrail Lake queries" answers _col0, _col1).
	res, err = h.l.Query(ctx, acctA, `SELECT element_at(requestParameters, 'bucketName'), eventname, userIdentity.ARN, count(*) AS n, lower(eventName) FROM `+h.idA2+` GROUP BY 1, 2, 3, 5`)
	if err != nil || strings.Join(res.Columns, ",") != "_col0,eventname,ARN,n,_col4" {
		t.Errorf("column names: %v, %v; want _col0,eventname,ARN,n,_col4", res, err)
	}
	for _, stmt := range []string{
		`SELECT r.arn, r.type FROM ` + h.idA2 + ` CROSS JOIN UNNEST(resources) AS t(r) ORDER BY r.arn`,
		`SELECT t.r.arn, t.r.type FROM ` + h.idA2 + ` CROSS JOIN UNNEST(resources) AS t (r) ORDER BY 1`,
		`SELECT r.arn, r.type FROM ` + h.idA2 + ` e, UNNEST(e.resources) AS u(r) ORDER BY 1`,
	} {
		res, err := h.l.Query(ctx, acctA, stmt)
		if err != nil {
			t.Errorf("%s: %v", stmt, err)
			continue
		}
		if len(res.Rows) != 2 || *res.Rows[0][0] != "arn:aws:s3:::b" || *res.Rows[1][1] != "AWS::S3::Object" {
			t.Errorf("%s: %d rows; want the record's 2 resources", stmt, len(res.Rows))
		}
	}
}
