package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/cairn-audit/cairn/internal/cloudtrailmodel"
)

// fidelityEnv is a running cairn with, for alice: trails, event data
// stores, a channel, finished imports with failures and finished queries.
type fidelityEnv struct {
	ts                     *testServer
	store, custom, channel string // ARNs
	importID, queryID      string
	// queries is how many queries of 3 rows ran last; allQueries how many
	// ran in all.
	queries, allQueries int
}

func newFidelityEnv(t *testing.T, n int) *fidelityEnv {
	t.Helper()
	logs := t.TempDir()
	for i := range n {
		os.WriteFile(filepath.Join(logs, fmt.Sprintf("broken%d.json", i)), []byte(`{"Records":[{"eventID":`), 0o600)
	}
	cfg := fmt.Sprintf(twoAccounts, 90) + "lake:\n  import_roots: [" + logs + "]\n  ingest_interval: 50ms\n"
	e := &fidelityEnv{ts: startServer(t, cfg, "")}
	ctx := context.Background()
	a := alice(e.ts)
	for i := range n {
		if _, err := a.CreateTrail(ctx, &cloudtrail.CreateTrailInput{Name: aws.String(fmt.Sprintf("trail-%d", i)), S3BucketName: aws.String("cairn-logs"),
			TagsList: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}}); err != nil {
			t.Fatal(err)
		}
		st, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String(fmt.Sprintf("store-%d", i))})
		if err != nil {
			t.Fatal(err)
		}
		e.store = aws.ToString(st.EventDataStoreArn)
	}
	custom, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("custom"),
		AdvancedEventSelectors: []types.AdvancedEventSelector{{FieldSelectors: []types.AdvancedFieldSelector{{Field: aws.String("eventCategory"), Equals: []string{"ActivityAuditLog"}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	e.custom = aws.ToString(custom.EventDataStoreArn)
	ch, err := a.CreateChannel(ctx, &cloudtrail.CreateChannelInput{Name: aws.String("app"), Source: aws.String("Custom"),
		Destinations: []types.Destination{{Type: types.DestinationTypeEventDataStore, Location: &e.custom}}})
	if err != nil {
		t.Fatal(err)
	}
	e.channel = aws.ToString(ch.ChannelArn)
	for range n {
		im, err := a.StartImport(ctx, &cloudtrail.StartImportInput{Destinations: []string{e.store},
			ImportSource: &types.ImportSource{S3: &types.S3ImportSource{S3LocationUri: aws.String(logs), S3BucketRegion: aws.String("us-east-1"),
				S3BucketAccessRoleArn: aws.String("arn:aws:iam::111111111111:role/x")}}})
		if err != nil {
			t.Fatal(err)
		}
		e.importID = aws.ToString(im.ImportId)
		for i := 0; ; i++ {
			g, err := a.GetImport(ctx, &cloudtrail.GetImportInput{ImportId: im.ImportId})
			if err != nil {
				t.Fatal(err)
			}
			if g.ImportStatus != types.ImportStatusInitializing && g.ImportStatus != types.ImportStatusInProgress {
				break
			}
			if i > 600 {
				t.Fatal("import did not end")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// n queries of 3 rows each: the store holds the records of this
	// setup's calls once the lake has ingested them (every 50 ms).
	id := e.store[strings.LastIndex(e.store, "/")+1:]
	for i := 0; e.queries < n; i++ {
		q, err := a.StartQuery(ctx, &cloudtrail.StartQueryInput{QueryStatement: aws.String(`SELECT eventName FROM ` + id + ` LIMIT 3`)})
		if err != nil {
			t.Fatal(err)
		}
		e.queryID = aws.ToString(q.QueryId)
		e.queries++
		for j := 0; ; j++ {
			d, err := a.DescribeQuery(ctx, &cloudtrail.DescribeQueryInput{QueryId: q.QueryId})
			if err != nil {
				t.Fatal(err)
			}
			if d.QueryStatus != types.QueryStatusQueued && d.QueryStatus != types.QueryStatusRunning {
				break
			}
			if j > 600 {
				t.Fatal("query did not end")
			}
			time.Sleep(20 * time.Millisecond)
		}
		r, err := a.GetQueryResults(ctx, &cloudtrail.GetQueryResultsInput{QueryId: q.QueryId})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.QueryResultRows) < 3 {
			if i > 100 {
				t.Fatal("the store holds no records")
			}
			e.queries = 0 // only queries of 3 rows count; ListQueries counts them all
			e.allQueries++
			time.Sleep(50 * time.Millisecond)
			continue
		}
	}
	e.allQueries += e.queries
	return e
}

// TestPaginationWithBoto3AndTheAWSCLI: boto3's paginators and hand-made
// NextToken loops (botocore validates a PaginationToken's min of 4
// characters before sending it) and `aws cloudtrail list-imports
// --page-size 1`-style runs page every paginated operation to its end,
// one item a page, against a running cairn. The model (botocore's
// service-2.json: PaginationToken, min 4, max 1000; paginators-1.json)
// is the authority; before issue 14, page 2 failed for every Lake list.
func TestPaginationWithBoto3AndTheAWSCLI(t *testing.T) {
	if _, err := exec.LookPath("aws"); err != nil {
		t.Skip("the AWS CLI is not installed")
	}
	if err := exec.Command("python3", "-c", "import boto3").Run(); err != nil {
		t.Skip("boto3 is not installed")
	}
	e := newFidelityEnv(t, 3)
	env := append(os.Environ(), "AWS_ACCESS_KEY_ID=AKIAALICE00000000001", "AWS_SECRET_ACCESS_KEY=alice-secret-key",
		"AWS_DEFAULT_REGION=us-east-1", "AWS_REGION=us-east-1", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		"AWS_MAX_ATTEMPTS=1")
	script := `
import json, sys, boto3
ep, store, imp, query, trail = sys.argv[1:6]
c = boto3.client("cloudtrail", endpoint_url=ep)
out = {}
def count(name, key, **kw):
    items = 0
    for p in c.get_paginator(name).paginate(**kw):
        items += len(p[key])
    return items
def loop(method, key, **kw):
    items, tok = 0, None
    while True:
        args = dict(kw)
        if tok:
            args["NextToken"] = tok
        r = getattr(c, method)(**args)
        items += len(r[key])
        tok = r.get("NextToken")
        if not tok:
            return items
out["list_imports"] = count("list_imports", "Imports", PaginationConfig={"PageSize": 1})
out["list_import_failures"] = count("list_import_failures", "Failures", ImportId=imp, PaginationConfig={"PageSize": 1})
out["list_trails"] = count("list_trails", "Trails")
out["list_tags"] = count("list_tags", "ResourceTagList", ResourceIdList=[trail, store])
out["list_public_keys"] = count("list_public_keys", "PublicKeyList")
out["list_event_data_stores"] = loop("list_event_data_stores", "EventDataStores", MaxResults=1)
out["list_channels"] = loop("list_channels", "Channels", MaxResults=1)
out["list_queries"] = loop("list_queries", "Queries", EventDataStore=store, MaxResults=1)
out["get_query_results"] = loop("get_query_results", "QueryResultRows", QueryId=query, MaxQueryResults=1)
print(json.dumps(out))
`
	trailARN := "arn:aws:cloudtrail:us-east-1:111111111111:trail/trail-0"
	cmd := exec.Command("python3", "-c", script, e.ts.endpoint, e.store, e.importID, e.queryID, trailARN)
	cmd.Env = env
	var o, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("boto3: %v\n%s", err, stderr.String())
	}
	var got map[string]int
	if err := json.Unmarshal(o.Bytes(), &got); err != nil {
		t.Fatalf("boto3 output %q: %v", o.String(), err)
	}
	want := map[string]int{"list_imports": 3, "list_import_failures": 3, "list_trails": 3, "list_tags": 2, "list_public_keys": 1,
		"list_event_data_stores": 4, "list_channels": 1, "list_queries": e.allQueries, "get_query_results": 3}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("boto3 %s: %d items; want %d", k, got[k], v)
		}
	}

	// The AWS CLI pages with --page-size (paginated operations) and takes
	// back a NextToken by --next-token (the others).
	cli := func(args ...string) map[string]any {
		t.Helper()
		cmd := exec.Command("aws", append(append([]string{"cloudtrail"}, args...), "--endpoint-url", e.ts.endpoint, "--output", "json")...)
		cmd.Env = env
		var o, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("aws cloudtrail %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		var m map[string]any
		if err := json.Unmarshal(o.Bytes(), &m); err != nil {
			t.Fatalf("aws cloudtrail %s: %q: %v", strings.Join(args, " "), o.String(), err)
		}
		return m
	}
	for _, c := range []struct {
		args []string
		key  string
		n    int
	}{
		{[]string{"list-imports", "--page-size", "1"}, "Imports", 3},
		{[]string{"list-import-failures", "--import-id", e.importID, "--page-size", "1"}, "Failures", 3},
		{[]string{"list-trails"}, "Trails", 3},
	} {
		if l, _ := cli(c.args...)[c.key].([]any); len(l) != c.n {
			t.Errorf("aws cloudtrail %s: %d %s; want %d", strings.Join(c.args, " "), len(l), c.key, c.n)
		}
	}
	for _, c := range []struct {
		args []string
		key  string
		n    int
	}{
		{[]string{"list-event-data-stores", "--max-results", "1"}, "EventDataStores", 4},
		{[]string{"list-queries", "--event-data-store", e.store, "--max-results", "1"}, "Queries", e.allQueries},
		{[]string{"get-query-results", "--query-id", e.queryID, "--max-query-results", "1"}, "QueryResultRows", 3},
	} {
		items, args := 0, c.args
		for pages := 0; ; pages++ {
			m := cli(args...)
			l, _ := m[c.key].([]any)
			items += len(l)
			tok, _ := m["NextToken"].(string)
			if tok == "" || pages > c.n+10 {
				break
			}
			args = append(slices.Clone(c.args), "--next-token", tok)
		}
		if items != c.n {
			t.Errorf("aws cloudtrail %s, following --next-token: %d %s; want %d", strings.Join(c.args, " "), items, c.key, c.n)
		}
	}
}

// TestOperationsAnswerModeledErrors: every operation cairn implements,
// provoked into its errors (missing, malformed and out-of-enum members,
// unknown resources, bad tokens, reversed time ranges, wrong states),
// answers only error codes the botocore model lists for that operation,
// so that boto3 and the other SDKs raise its exception class (issue 14).
// Where the issue or AWS's documentation names the code, it is checked
// too. An operation that does not answer UnsupportedOperationException is
// implemented and must have provocations here.
func TestOperationsAnswerModeledErrors(t *testing.T) {
	e := newFidelityEnv(t, 1)
	const target = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101."
	asAlice := signAs("AKIAALICE00000000001", "alice-secret-key", "us-east-1")
	zero := "00000000-0000-0000-0000-000000000000"
	trailARN := "arn:aws:cloudtrail:us-east-1:111111111111:trail/trail-0"
	noTrail := "arn:aws:cloudtrail:us-east-1:111111111111:trail/nope"
	noStore := e.store[:strings.LastIndex(e.store, "/")+1] + zero
	noChannel := e.channel[:strings.LastIndex(e.channel, "/")+1] + zero
	bobs := "arn:aws:cloudtrail:us-east-1:222222222222:eventdatastore/" + zero
	dest := `"Destinations":[{"Type":"EVENT_DATA_STORE","Location":"` + e.custom + `"}]`
	type provoke struct{ body, want string }
	cases := map[string][]provoke{
		"AddTags": {{`{}`, ""}, {`{"ResourceId":"x","TagsList":[]}`, "CloudTrailARNInvalidException"},
			{`{"ResourceId":"` + noTrail + `","TagsList":[{"Key":"k"}]}`, "ResourceNotFoundException"},
			{`{"ResourceId":"` + bobs + `","TagsList":[{"Key":"k"}]}`, "CloudTrailARNInvalidException"},
			{`{"ResourceId":"` + e.store + `","TagsList":[{"Key":"aws:k"}]}`, "InvalidTagParameterException"},
			{`{"ResourceId":"` + trailARN + `","TagsList":[{"Key":""}]}`, "InvalidTagParameterException"},
			{`{"ResourceId":"` + e.store + `","TagsList":[` + strings.Repeat(`{"Key":"k"},`, 200) + `{"Key":"k"}]}`, "TagsLimitExceededException"}},
		"RemoveTags": {{`{}`, ""}, {`{"ResourceId":"` + noStore + `","TagsList":[{"Key":"k"}]}`, "EventDataStoreNotFoundException"},
			{`{"ResourceId":"` + noChannel + `","TagsList":[{"Key":"k"}]}`, "ChannelNotFoundException"},
			{`{"ResourceId":"` + e.store + `","TagsList":[` + strings.Repeat(`{"Key":"k"},`, 200) + `{"Key":"k"}]}`, "InvalidTagParameterException"}},
		"ListTags": {{`{}`, ""}, {`{"ResourceIdList":["x"]}`, "CloudTrailARNInvalidException"},
			{`{"ResourceIdList":["` + noTrail + `"]}`, "ResourceNotFoundException"},
			{`{"ResourceIdList":["` + noChannel + `"]}`, "ResourceNotFoundException"},
			{`{"ResourceIdList":["` + trailARN + `"],"NextToken":"abcd"}`, "InvalidTokenException"}},
		"ListPublicKeys": {{`{"StartTime":2000000000,"EndTime":1000000000}`, "InvalidTimeRangeException"}, {`{"NextToken":"abcd"}`, "InvalidTokenException"}},
		"CreateTrail": {{`{}`, ""}, {`{"Name":"x!","S3BucketName":"cairn-logs"}`, "InvalidTrailNameException"},
			{`{"Name":"fresh","S3BucketName":"no-such-bucket"}`, "S3BucketDoesNotExistException"},
			// The combination is checked before the bucket (issue 14).
			{`{"Name":"fresh","S3BucketName":"no-such-bucket","IsMultiRegionTrail":true,"IncludeGlobalServiceEvents":false}`, "InvalidParameterCombinationException"},
			{`{"Name":"trail-0","S3BucketName":"cairn-logs"}`, "TrailAlreadyExistsException"}},
		"UpdateTrail": {{`{}`, ""}, {`{"Name":"nope"}`, "TrailNotFoundException"},
			{`{"Name":"trail-0","IncludeGlobalServiceEvents":false,"IsMultiRegionTrail":true}`, "InvalidParameterCombinationException"}},
		"DeleteTrail":    {{`{}`, ""}, {`{"Name":"nope"}`, "TrailNotFoundException"}, {`{"Name":"arn:aws:nope"}`, ""}},
		"GetTrail":       {{`{}`, ""}, {`{"Name":"nope"}`, "TrailNotFoundException"}},
		"DescribeTrails": {{`{"trailNameList":["x!"]}`, ""}},
		"ListTrails":     {{`{"NextToken":"abcd"}`, "OperationNotPermittedException"}},
		"GetTrailStatus": {{`{}`, ""}, {`{"Name":"nope"}`, "TrailNotFoundException"}, {`{"Name":"` + noTrail + `"}`, "TrailNotFoundException"}},
		"StartLogging":   {{`{}`, ""}, {`{"Name":"nope"}`, "TrailNotFoundException"}},
		"StopLogging":    {{`{}`, ""}, {`{"Name":"nope"}`, "TrailNotFoundException"}},
		"PutEventSelectors": {{`{}`, ""}, {`{"TrailName":"trail-0"}`, "InvalidEventSelectorsException"},
			{`{"TrailName":"trail-0","EventSelectors":[{}],"AdvancedEventSelectors":[{"FieldSelectors":[{"Field":"eventCategory","Equals":["Management"]}]}]}`, "InvalidEventSelectorsException"},
			{`{"TrailName":"trail-0","EventSelectors":[{"ReadWriteType":"Sometimes"}]}`, "InvalidEventSelectorsException"},
			{`{"TrailName":"nope","EventSelectors":[{}]}`, "TrailNotFoundException"}},
		"GetEventSelectors": {{`{}`, "InvalidTrailNameException"}, {`{"TrailName":"nope"}`, "TrailNotFoundException"}},
		"PutInsightSelectors": {{`{}`, ""}, {`{"TrailName":"trail-0","InsightSelectors":[{"InsightType":"Bad"}]}`, "InvalidInsightSelectorsException"},
			{`{"TrailName":"nope","InsightSelectors":[{"InsightType":"ApiCallRateInsight"}]}`, "TrailNotFoundException"}},
		"GetInsightSelectors": {{`{}`, ""}, {`{"TrailName":"nope"}`, "TrailNotFoundException"}},
		"CreateChannel": {{`{}`, ""}, {`{"Name":"other","Source":"NotASource",` + dest + `}`, "InvalidSourceException"},
			{`{"Name":"other","Source":"Custom","Destinations":[{"Type":"SOMEWHERE","Location":"x"}]}`, "InvalidParameterException"},
			{`{"Name":"app","Source":"Custom",` + dest + `}`, "ChannelAlreadyExistsException"},
			{`{"Name":"other","Source":"Custom","Destinations":[{"Type":"EVENT_DATA_STORE","Location":"` + e.store + `"}]}`, "InvalidEventDataStoreCategoryException"}},
		"GetChannel":    {{`{}`, ""}, {`{"Channel":"` + noChannel + `"}`, "ChannelNotFoundException"}},
		"DeleteChannel": {{`{}`, ""}, {`{"Channel":"` + noChannel + `"}`, "ChannelNotFoundException"}},
		"UpdateChannel": {{`{}`, ""}, {`{"Channel":"` + noChannel + `"}`, "ChannelNotFoundException"}},
		"ListChannels":  {{`{"NextToken":"abcd"}`, "InvalidNextTokenException"}},
		"ListEventDataStores": {{`{"MaxResults":0}`, "InvalidMaxResultsException"}, {`{"NextToken":"abcd"}`, "InvalidNextTokenException"},
			{`{"NextToken":"1"}`, "InvalidNextTokenException"}},
		"CreateEventDataStore": {{`{}`, ""}, {`{"Name":"x"}`, "InvalidParameterException"},
			{`{"Name":"fresh","BillingMode":"CHEAP"}`, "InvalidParameterException"},
			{`{"Name":"fresh","KmsKeyId":"k"}`, "InvalidKmsKeyIdException"},
			{`{"Name":"fresh","MultiRegionEnabled":true,"AdvancedEventSelectors":[{"FieldSelectors":[{"Field":"eventCategory","Equals":["ActivityAuditLog"]}]}]}`, ""},
			{`{"Name":"store-0"}`, "EventDataStoreAlreadyExistsException"}},
		"GetEventDataStore":     {{`{}`, ""}, {`{"EventDataStore":"` + noStore + `"}`, "EventDataStoreNotFoundException"}},
		"UpdateEventDataStore":  {{`{}`, ""}, {`{"EventDataStore":"` + e.store + `","BillingMode":"CHEAP"}`, "InvalidParameterException"}},
		"DeleteEventDataStore":  {{`{}`, ""}, {`{"EventDataStore":"` + noStore + `"}`, "EventDataStoreNotFoundException"}, {`{"EventDataStore":"` + e.custom + `"}`, ""}},
		"RestoreEventDataStore": {{`{}`, ""}, {`{"EventDataStore":"` + e.store + `"}`, "InvalidEventDataStoreStatusException"}},
		"StartEventDataStoreIngestion": {{`{}`, ""}, {`{"EventDataStore":"` + e.store + `"}`, "InvalidEventDataStoreStatusException"},
			{`{"EventDataStore":"` + e.custom + `"}`, "InvalidEventDataStoreCategoryException"}},
		"StopEventDataStoreIngestion": {{`{}`, ""}, {`{"EventDataStore":"` + noStore + `"}`, "EventDataStoreNotFoundException"}},
		"StartImport": {{`{}`, ""}, {`{"Destinations":["` + e.store + `"],"ImportSource":{"S3":{"S3LocationUri":"/etc","S3BucketRegion":"us-east-1","S3BucketAccessRoleArn":"arn:aws:iam::111111111111:role/x"}}}`, ""},
			{`{"Destinations":["` + e.store + `"],"ImportSource":{"S3":{"S3LocationUri":"s3://b/p","S3BucketRegion":"us-east-1","S3BucketAccessRoleArn":"r"}},"StartEventTime":2000000000,"EndEventTime":1000000000}`, ""}},
		"GetImport":          {{`{}`, ""}, {`{"ImportId":"` + zero + `"}`, "ImportNotFoundException"}},
		"StopImport":         {{`{}`, ""}, {`{"ImportId":"` + zero + `"}`, "ImportNotFoundException"}},
		"ListImports":        {{`{"ImportStatus":"DONE"}`, "InvalidParameterException"}, {`{"NextToken":"abcd"}`, "InvalidNextTokenException"}, {`{"MaxResults":0}`, ""}},
		"ListImportFailures": {{`{"ImportId":"` + zero + `"}`, "InvalidParameterException"}, {`{}`, ""}},
		"StartQuery":         {{`{}`, ""}, {`{"QueryStatement":"SELECT"}`, "InvalidQueryStatementException"}},
		"DescribeQuery":      {{`{}`, ""}, {`{"QueryId":"` + zero + `"}`, "QueryIdNotFoundException"}},
		"GetQueryResults":    {{`{}`, ""}, {`{"QueryId":"` + zero + `"}`, "QueryIdNotFoundException"}, {`{"QueryId":"` + e.queryID + `","NextToken":"abcd"}`, "InvalidNextTokenException"}},
		"CancelQuery":        {{`{}`, ""}, {`{"QueryId":"` + e.queryID + `"}`, "InactiveQueryException"}},
		"ListQueries": {{`{}`, ""}, {`{"EventDataStore":"` + e.store + `","QueryStatus":"DONE"}`, "InvalidQueryStatusException"},
			{`{"EventDataStore":"` + e.store + `","StartTime":2000000000,"EndTime":1000000000}`, "InvalidDateRangeException"},
			{`{"EventDataStore":"` + noStore + `"}`, "EventDataStoreNotFoundException"},
			{`{"EventDataStore":"` + e.store + `","NextToken":"abcd"}`, "InvalidNextTokenException"}},
		"LookupEvents": {{`{"MaxResults":0}`, "InvalidMaxResultsException"}, {`{"StartTime":2000000000,"EndTime":1000000000}`, "InvalidTimeRangeException"},
			{`{"EventCategory":"other"}`, "InvalidEventCategoryException"},
			{`{"LookupAttributes":[{"AttributeKey":"Bad","AttributeValue":"v"}]}`, "InvalidLookupAttributesException"},
			{`{"NextToken":"abcd"}`, "InvalidNextTokenException"}},
	}
	// A multi-Region trail changed from outside its home region.
	if _, err := alice(e.ts).CreateTrail(context.Background(), &cloudtrail.CreateTrailInput{Name: aws.String("multi"),
		S3BucketName: aws.String("cairn-logs"), IsMultiRegionTrail: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	multi := "arn:aws:cloudtrail:us-east-1:111111111111:trail/multi"
	west := signAs("AKIAALICE00000000001", "alice-secret-key", "us-west-2")
	for _, c := range []struct{ op, body string }{
		{"AddTags", `{"ResourceId":"` + multi + `","TagsList":[{"Key":"k"}]}`},
		{"RemoveTags", `{"ResourceId":"` + multi + `","TagsList":[{"Key":"k"}]}`},
		{"StopLogging", `{"Name":"` + multi + `"}`},
		{"PutEventSelectors", `{"TrailName":"` + multi + `","EventSelectors":[{}]}`},
		{"DeleteTrail", `{"Name":"` + multi + `"}`},
	} {
		status, body := rawCall(t, e.ts, target+c.op, c.body, west)
		var m map[string]any
		json.Unmarshal([]byte(body), &m)
		op, _ := cloudtrailmodel.Operation(c.op)
		if code, _ := m["__type"].(string); status != 400 || !slices.Contains(op.Errors, code) {
			t.Errorf("%s %s from us-west-2 = %d %s; want one of its modeled errors", c.op, c.body, status, body)
		}
	}
	for _, op := range cloudtrailmodel.Operations() {
		status, body := rawCall(t, e.ts, target+op.Name, `{}`, asAlice)
		var m map[string]any
		json.Unmarshal([]byte(body), &m)
		implemented := m["__type"] != "UnsupportedOperationException"
		if _, ok := cases[op.Name]; implemented && !ok {
			t.Errorf("%s is implemented ({} answered %d %s) and has no provocations here", op.Name, status, body)
		}
		for _, p := range cases[op.Name] {
			status, body := rawCall(t, e.ts, target+op.Name, p.body, asAlice)
			var m map[string]any
			if err := json.Unmarshal([]byte(body), &m); err != nil {
				t.Errorf("%s %s: %d %q", op.Name, p.body, status, body)
				continue
			}
			code, _ := m["__type"].(string)
			switch {
			case status != 400 || code == "":
				t.Errorf("%s %s = %d %s; want an error", op.Name, p.body, status, body)
			case !slices.Contains(op.Errors, code):
				t.Errorf("%s %s = %s (%v): not among the operation's modeled errors %v", op.Name, p.body, code, m["message"], op.Errors)
			case p.want != "" && code != p.want:
				t.Errorf("%s %s = %s (%v); want %s", op.Name, p.body, code, m["message"], p.want)
			}
		}
	}
}

// TestListPublicKeysAndTrailStatusAsAWS: ListPublicKeys lists the region's
// current key before any digest was written (AWS answers the key valid
// now for the default time range; the AWS CLI's validate-logs relies on
// it), and GetTrailStatus names a trail it did not find by ARN even when
// given a name ("Unknown trail: arn:aws:cloudtrail:...:trail/NAME for the
// user: ACCOUNT", as AWS words it and moto mirrors).
func TestListPublicKeysAndTrailStatusAsAWS(t *testing.T) {
	ts := startServer(t, fmt.Sprintf(twoAccounts, 90), "")
	ctx := context.Background()
	a := alice(ts)
	k, err := a.ListPublicKeys(ctx, &cloudtrail.ListPublicKeysInput{})
	if err != nil || len(k.PublicKeyList) != 1 || len(k.PublicKeyList[0].Value) == 0 || aws.ToString(k.PublicKeyList[0].Fingerprint) == "" {
		t.Errorf("ListPublicKeys before any digest = %+v, %v; want the region's current key", k, err)
	}
	again, err := a.ListPublicKeys(ctx, &cloudtrail.ListPublicKeysInput{})
	if err != nil || len(again.PublicKeyList) != 1 || aws.ToString(again.PublicKeyList[0].Fingerprint) != aws.ToString(k.PublicKeyList[0].Fingerprint) {
		t.Errorf("ListPublicKeys again = %+v, %v; want the same key", again, err)
	}
	past, err := a.ListPublicKeys(ctx, &cloudtrail.ListPublicKeysInput{StartTime: aws.Time(time.Unix(1e9, 0)), EndTime: aws.Time(time.Unix(1e9+3600, 0))})
	if err != nil || len(past.PublicKeyList) != 0 {
		t.Errorf("ListPublicKeys of 2001 = %+v, %v; want none", past, err)
	}
	_, err = a.GetTrailStatus(ctx, &cloudtrail.GetTrailStatusInput{Name: aws.String("nope")})
	if want := "Unknown trail: arn:aws:cloudtrail:us-east-1:111111111111:trail/nope for the user: 111111111111"; errCode(err) != "TrailNotFoundException" || !strings.Contains(err.Error(), want) {
		t.Errorf("GetTrailStatus(nope) = %v; want TrailNotFoundException %q", err, want)
	}
}
