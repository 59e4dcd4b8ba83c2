package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/cairn-audit/cairn/internal/mototest"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// logKey is AWS's key of a log file (facts §4.1).
var logKeyRE = regexp.MustCompile(`^AWSLogs/111111111111/CloudTrail/us-east-1/\d{4}/\d{2}/\d{2}/111111111111_CloudTrail_us-east-1_\d{8}T\d{4}Z_[A-Za-z0-9]{16}\.json\.gz$`)

// logRecords reads the records of delivered log files, failing on a key
// or body that is not what AWS writes.
func logRecords(t *testing.T, files map[string][]byte) []json.RawMessage {
	t.Helper()
	var out []json.RawMessage
	for key, gz := range files {
		if !logKeyRE.MatchString(key) {
			t.Errorf("log file key %q is not AWS's layout", key)
		}
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		body, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		var f struct{ Records []json.RawMessage }
		if err := json.Unmarshal(body, &f); err != nil || !bytes.HasPrefix(body, []byte(`{"Records":[`)) {
			t.Fatalf("%s: not a CloudTrail log file: %v", key, err)
		}
		out = append(out, f.Records...)
	}
	return out
}

// localFiles returns the files under dir by key.
func localFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.Contains(d.Name(), ".tmp-") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, path)
		out[filepath.ToSlash(rel)] = b
		return nil
	})
	return out
}

func eventNames(t *testing.T, recs []json.RawMessage) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, r := range recs {
		var e struct {
			EventName, RecipientAccountID string
		}
		if err := json.Unmarshal(r, &e); err != nil {
			t.Fatal(err)
		}
		if e.RecipientAccountID != "111111111111" {
			t.Errorf("a record of account %s reached 111111111111's trail", e.RecipientAccountID)
		}
		out[e.EventName]++
	}
	return out
}

func TestTrailsDeliverToALocalBucket(t *testing.T) {
	logs := t.TempDir()
	cfg := fmt.Sprintf(twoAccounts, 90) + fmt.Sprintf("buckets:\n  - name: local-logs\n    local_dir: %s\ndelivery:\n  interval: 1s\n", logs)
	dataDir := t.TempDir()
	ts := startServer(t, cfg, dataDir)
	ctx := context.Background()
	ct, bob := alice(ts), ts.client("AKIABOB0000000000001", "bob-secret-key", "us-east-1")

	for _, c := range []struct {
		in   cloudtrail.CreateTrailInput
		code string
	}{
		{cloudtrail.CreateTrailInput{Name: aws.String("audit"), S3BucketName: aws.String("no-such-bucket")}, "S3BucketDoesNotExistException"},
		{cloudtrail.CreateTrailInput{Name: aws.String("ab"), S3BucketName: aws.String("local-logs")}, "InvalidTrailNameException"},
		{cloudtrail.CreateTrailInput{Name: aws.String("a--b"), S3BucketName: aws.String("local-logs")}, "InvalidTrailNameException"},
		{cloudtrail.CreateTrailInput{Name: aws.String("audit"), S3BucketName: aws.String("local-logs"), IsMultiRegionTrail: aws.Bool(true), IncludeGlobalServiceEvents: aws.Bool(false)}, "InvalidParameterCombinationException"},
		{cloudtrail.CreateTrailInput{Name: aws.String("audit"), S3BucketName: aws.String("local-logs"), KmsKeyId: aws.String("alias/x")}, "UnsupportedOperationException"},
		{cloudtrail.CreateTrailInput{Name: aws.String("audit"), S3BucketName: aws.String("local-logs"), S3KeyPrefix: aws.String("/abs")}, "InvalidS3PrefixException"},
	} {
		if _, err := ct.CreateTrail(ctx, &c.in); errCode(err) != c.code {
			t.Errorf("CreateTrail(%s, %s) = %v; want %s", aws.ToString(c.in.Name), aws.ToString(c.in.S3BucketName), err, c.code)
		}
	}
	out, err := ct.CreateTrail(ctx, &cloudtrail.CreateTrailInput{Name: aws.String("audit"), S3BucketName: aws.String("local-logs")})
	if err != nil {
		t.Fatal(err)
	}
	arn := "arn:aws:cloudtrail:us-east-1:111111111111:trail/audit"
	if aws.ToString(out.TrailARN) != arn || !aws.ToBool(out.IncludeGlobalServiceEvents) || aws.ToBool(out.IsMultiRegionTrail) {
		t.Errorf("CreateTrail = %+v", out)
	}
	if _, err := ct.CreateTrail(ctx, &cloudtrail.CreateTrailInput{Name: aws.String("audit"), S3BucketName: aws.String("local-logs")}); errCode(err) != "TrailAlreadyExistsException" {
		t.Errorf("second CreateTrail = %v", err)
	}
	st, err := ct.GetTrailStatus(ctx, &cloudtrail.GetTrailStatusInput{Name: aws.String("audit")})
	if err != nil || aws.ToBool(st.IsLogging) {
		t.Fatalf("a new trail's status = %+v, %v; want not logging", st, err)
	}
	// Another account sees nothing of it.
	if d, err := bob.DescribeTrails(ctx, &cloudtrail.DescribeTrailsInput{}); err != nil || len(d.TrailList) != 0 {
		t.Errorf("bob's DescribeTrails = %+v, %v", d, err)
	}
	if _, err := bob.GetTrail(ctx, &cloudtrail.GetTrailInput{Name: aws.String(arn)}); errCode(err) != "TrailNotFoundException" {
		t.Errorf("bob's GetTrail(alice's ARN) = %v", err)
	}
	if _, err := bob.StartLogging(ctx, &cloudtrail.StartLoggingInput{Name: aws.String(arn)}); errCode(err) != "TrailNotFoundException" {
		t.Errorf("bob's StartLogging(alice's ARN) = %v", err)
	}
	// Another region sees a single-region trail only by... not at all.
	west := ts.client("AKIAALICE00000000001", "alice-secret-key", "us-west-2")
	if _, err := west.StopLogging(ctx, &cloudtrail.StopLoggingInput{Name: aws.String(arn)}); errCode(err) != "TrailNotFoundException" {
		t.Errorf("StopLogging from another region = %v", err)
	}

	// Records of earlier calls may be stored after StartLogging; the trail
	// leaves out events from before the second it started.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	if _, err := ct.StartLogging(ctx, &cloudtrail.StartLoggingInput{Name: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := ct.DescribeTrails(ctx, &cloudtrail.DescribeTrailsInput{}); err != nil {
			t.Fatal(err)
		}
		if _, err := bob.ListTrails(ctx, &cloudtrail.ListTrailsInput{}); err != nil {
			t.Fatal(err)
		}
	}
	var names map[string]int
	var recs []json.RawMessage
	for deadline := testwait.End(t); ; {
		recs = logRecords(t, localFiles(t, logs))
		names = eventNames(t, recs)
		if names["DescribeTrails"] >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if names["DescribeTrails"] != 3 || names["StartLogging"] != 1 || names["CreateTrail"] != 0 || names["ListTrails"] != 0 {
		t.Errorf("delivered %v; want 3 DescribeTrails and the StartLogging, nothing from before it, nothing of bob's", names)
	}
	// Delivered bytes are the stored records, byte for byte.
	stored := map[string]bool{}
	for _, e := range lookupAll(t, ct, &cloudtrail.LookupEventsInput{LookupAttributes: attr(types.LookupAttributeKeyEventSource, "cloudtrail.amazonaws.com")}) {
		stored[aws.ToString(e.CloudTrailEvent)] = true
	}
	for _, r := range recs {
		if !stored[string(r)] {
			t.Errorf("delivered record is not a stored record byte for byte: %.200s", r)
		}
	}
	// A round writes its files before it saves the trail's status: wait
	// (until the test's deadline) for the saved delivery time, not only
	// for the files.
	for deadline := testwait.End(t); ; {
		st, err = ct.GetTrailStatus(ctx, &cloudtrail.GetTrailStatusInput{Name: aws.String("audit")})
		if err != nil || st.LatestDeliveryTime != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil || !aws.ToBool(st.IsLogging) || st.LatestDeliveryTime == nil || st.StartLoggingTime == nil || aws.ToString(st.LatestDeliveryError) != "" {
		t.Errorf("status after delivery = %+v, %v", st, err)
	}

	// Selectors: write-only management events from now on.
	if _, err := ct.PutEventSelectors(ctx, &cloudtrail.PutEventSelectorsInput{TrailName: aws.String("audit"),
		EventSelectors: []types.EventSelector{{ReadWriteType: types.ReadWriteTypeWriteOnly, IncludeManagementEvents: aws.Bool(true)}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ct.PutEventSelectors(ctx, &cloudtrail.PutEventSelectorsInput{TrailName: aws.String("audit"),
		EventSelectors: []types.EventSelector{{ReadWriteType: "Sometimes"}}}); errCode(err) != "InvalidEventSelectorsException" {
		t.Errorf("PutEventSelectors(bad ReadWriteType) = %v", err)
	}
	sel, err := ct.GetEventSelectors(ctx, &cloudtrail.GetEventSelectorsInput{TrailName: aws.String("audit")})
	if err != nil || len(sel.EventSelectors) != 1 || sel.EventSelectors[0].ReadWriteType != types.ReadWriteTypeWriteOnly {
		t.Errorf("GetEventSelectors = %+v, %v", sel, err)
	}
	before := len(recs)
	for range 2 {
		ct.GetTrail(ctx, &cloudtrail.GetTrailInput{Name: aws.String("audit")}) // read: not delivered
	}
	if _, err := ct.UpdateTrail(ctx, &cloudtrail.UpdateTrailInput{Name: aws.String("audit"), EnableLogFileValidation: aws.Bool(false)}); err != nil {
		t.Fatal(err)
	}
	for deadline := testwait.End(t); ; {
		recs = logRecords(t, localFiles(t, logs))
		names = eventNames(t, recs)
		if names["UpdateTrail"] >= 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if names["UpdateTrail"] != 1 || names["GetTrail"] != 0 || names["GetEventSelectors"] != 0 {
		t.Errorf("after WriteOnly selectors delivered %v (%d new)", names, len(recs)-before)
	}

	// The trail and its logging survive a restart.
	ts.stop()
	ts = startServer(t, cfg, dataDir)
	ct = alice(ts)
	st, err = ct.GetTrailStatus(ctx, &cloudtrail.GetTrailStatusInput{Name: aws.String(arn)})
	if err != nil || !aws.ToBool(st.IsLogging) {
		t.Errorf("after a restart: %+v, %v", st, err)
	}
	if _, err := ct.StopLogging(ctx, &cloudtrail.StopLoggingInput{Name: aws.String("audit")}); err != nil {
		t.Fatal(err)
	}
	if _, err := ct.DeleteTrail(ctx, &cloudtrail.DeleteTrailInput{Name: aws.String("audit")}); err != nil {
		t.Fatal(err)
	}
	if _, err := ct.GetTrail(ctx, &cloudtrail.GetTrailInput{Name: aws.String("audit")}); errCode(err) != "TrailNotFoundException" {
		t.Errorf("GetTrail after DeleteTrail = %v", err)
	}
}

func TestTrailsDeliverToS3(t *testing.T) {
	moto := mototest.Start(t)
	ctx := context.Background()
	s3c := newS3(moto, "x", "y", 0) // moto is not under test: the SDK's retries
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("audit-logs")}); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(twoAccounts, 90) + fmt.Sprintf(`buckets:
  - name: audit-logs
    s3: {endpoint: %q, region: us-east-1, access_key_id: x, secret_access_key: y, path_style: true}
  - name: missing-logs
    s3: {endpoint: %q, region: us-east-1, access_key_id: x, secret_access_key: y, path_style: true}
delivery:
  interval: 1s
`, moto, moto)
	ts := startServer(t, cfg, "")
	ct := alice(ts)
	if _, err := ct.CreateTrail(ctx, &cloudtrail.CreateTrailInput{Name: aws.String("org"), S3BucketName: aws.String("missing-logs")}); errCode(err) != "S3BucketDoesNotExistException" {
		t.Errorf("CreateTrail on a configured bucket that S3 does not have = %v", err)
	}
	if _, err := ct.CreateTrail(ctx, &cloudtrail.CreateTrailInput{Name: aws.String("main"), S3BucketName: aws.String("audit-logs"), S3KeyPrefix: aws.String("team/a")}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	if _, err := ct.StartLogging(ctx, &cloudtrail.StartLoggingInput{Name: aws.String("main")}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		ct.ListTrails(ctx, &cloudtrail.ListTrailsInput{})
	}
	files := map[string][]byte{}
	for deadline := testwait.End(t); ; {
		list, err := s3c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("audit-logs")})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range list.Contents {
			key := aws.ToString(o.Key)
			if !strings.HasPrefix(key, "team/a/") {
				t.Fatalf("key %q lacks the S3KeyPrefix", key)
			}
			obj, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("audit-logs"), Key: o.Key})
			if err != nil {
				t.Fatal(err)
			}
			files[strings.TrimPrefix(key, "team/a/")], _ = io.ReadAll(obj.Body)
			obj.Body.Close()
		}
		if eventNames(t, logRecords(t, files))["ListTrails"] >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if names := eventNames(t, logRecords(t, files)); names["ListTrails"] != 2 || names["StartLogging"] != 1 {
		t.Errorf("delivered to S3: %v", names)
	}
}

func TestTrailsInsightsTagsAndOrganization(t *testing.T) {
	logs := t.TempDir()
	cfg := fmt.Sprintf(twoAccounts, 90) + fmt.Sprintf(`buckets:
  - name: local-logs
    local_dir: %s
delivery:
  interval: 1s
organization:
  id: o-abcdefghij
  management_account: "111111111111"
  member_accounts: ["222222222222"]
`, logs)
	ts := startServer(t, cfg, "")
	ctx := context.Background()
	ct, bob := alice(ts), ts.client("AKIABOB0000000000001", "bob-secret-key", "us-east-1")
	bobWest := ts.client("AKIABOB0000000000001", "bob-secret-key", "us-west-2")

	// Organization trails: only the management account makes them.
	if _, err := bob.CreateTrail(ctx, &cloudtrail.CreateTrailInput{Name: aws.String("mine"), S3BucketName: aws.String("local-logs"), IsOrganizationTrail: aws.Bool(true)}); errCode(err) != "NotOrganizationMasterAccountException" {
		t.Errorf("member's CreateTrail(IsOrganizationTrail) = %v", err)
	}
	out, err := ct.CreateTrail(ctx, &cloudtrail.CreateTrailInput{Name: aws.String("org"), S3BucketName: aws.String("local-logs"),
		IsOrganizationTrail: aws.Bool(true), IsMultiRegionTrail: aws.Bool(true),
		TagsList: []types.Tag{{Key: aws.String("team"), Value: aws.String("sec")}}})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(out.TrailARN)
	if !aws.ToBool(out.IsOrganizationTrail) || arn != "arn:aws:cloudtrail:us-east-1:111111111111:trail/org" {
		t.Errorf("CreateTrail = %+v", out)
	}
	// Members see it (in every region for a multi-region trail), read it by ARN, and cannot change it.
	for _, c := range []*cloudtrail.Client{bob, bobWest} {
		d, err := c.DescribeTrails(ctx, &cloudtrail.DescribeTrailsInput{})
		if err != nil || len(d.TrailList) != 1 || aws.ToString(d.TrailList[0].TrailARN) != arn || !aws.ToBool(d.TrailList[0].IsOrganizationTrail) {
			t.Errorf("member's DescribeTrails = %+v, %v", d, err)
		}
	}
	if _, err := bob.GetTrailStatus(ctx, &cloudtrail.GetTrailStatusInput{Name: aws.String(arn)}); err != nil {
		t.Errorf("member's GetTrailStatus by ARN: %v", err)
	}
	if _, err := bob.GetTrail(ctx, &cloudtrail.GetTrailInput{Name: aws.String("org")}); errCode(err) != "TrailNotFoundException" {
		t.Errorf("member's GetTrail by name = %v", err)
	}
	for name, call := range map[string]func() error{
		"StopLogging": func() error {
			_, err := bob.StopLogging(ctx, &cloudtrail.StopLoggingInput{Name: aws.String(arn)})
			return err
		},
		"DeleteTrail": func() error {
			_, err := bob.DeleteTrail(ctx, &cloudtrail.DeleteTrailInput{Name: aws.String(arn)})
			return err
		},
		"AddTags": func() error {
			_, err := bob.AddTags(ctx, &cloudtrail.AddTagsInput{ResourceId: aws.String(arn), TagsList: []types.Tag{{Key: aws.String("k")}}})
			return err
		},
	} {
		if err := call(); errCode(err) != "NotOrganizationMasterAccountException" {
			t.Errorf("member's %s = %v", name, err)
		}
	}

	// Tags.
	if _, err := ct.AddTags(ctx, &cloudtrail.AddTagsInput{ResourceId: aws.String(arn), TagsList: []types.Tag{{Key: aws.String("env"), Value: aws.String("prod")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ct.RemoveTags(ctx, &cloudtrail.RemoveTagsInput{ResourceId: aws.String(arn), TagsList: []types.Tag{{Key: aws.String("team")}}}); err != nil {
		t.Fatal(err)
	}
	lt, err := ct.ListTags(ctx, &cloudtrail.ListTagsInput{ResourceIdList: []string{arn}})
	if err != nil || len(lt.ResourceTagList) != 1 || len(lt.ResourceTagList[0].TagsList) != 1 || aws.ToString(lt.ResourceTagList[0].TagsList[0].Key) != "env" {
		t.Errorf("ListTags = %+v, %v", lt, err)
	}
	if _, err := ct.ListTags(ctx, &cloudtrail.ListTagsInput{ResourceIdList: []string{"arn:aws:cloudtrail:us-east-1:111111111111:trail/nope"}}); errCode(err) != "ResourceNotFoundException" {
		t.Errorf("ListTags(unknown) = %v", err)
	}
	if _, err := ct.AddTags(ctx, &cloudtrail.AddTagsInput{ResourceId: aws.String(arn), TagsList: []types.Tag{{Key: aws.String("aws:x")}}}); errCode(err) != "InvalidTagParameterException" {
		t.Errorf("AddTags(aws:) = %v", err)
	}

	// Insights selectors.
	if _, err := ct.GetInsightSelectors(ctx, &cloudtrail.GetInsightSelectorsInput{TrailName: aws.String("org")}); errCode(err) != "InsightNotEnabledException" {
		t.Errorf("GetInsightSelectors before = %v", err)
	}
	if _, err := ct.PutInsightSelectors(ctx, &cloudtrail.PutInsightSelectorsInput{TrailName: aws.String("org"),
		InsightSelectors: []types.InsightSelector{{InsightType: "ApiSomethingInsight"}}}); errCode(err) != "InvalidInsightSelectorsException" {
		t.Errorf("PutInsightSelectors(bad type) = %v", err)
	}
	if _, err := ct.PutInsightSelectors(ctx, &cloudtrail.PutInsightSelectorsInput{TrailName: aws.String("org"),
		InsightSelectors: []types.InsightSelector{{InsightType: types.InsightTypeApiErrorRateInsight}}}); err != nil {
		t.Fatal(err)
	}
	gi, err := ct.GetInsightSelectors(ctx, &cloudtrail.GetInsightSelectorsInput{TrailName: aws.String(arn)})
	if err != nil || len(gi.InsightSelectors) != 1 || gi.InsightSelectors[0].InsightType != types.InsightTypeApiErrorRateInsight {
		t.Errorf("GetInsightSelectors = %+v, %v", gi, err)
	}
	if g, err := ct.GetTrail(ctx, &cloudtrail.GetTrailInput{Name: aws.String("org")}); err != nil || !aws.ToBool(g.Trail.HasInsightSelectors) {
		t.Errorf("GetTrail after insights = %+v, %v", g, err)
	}

	// Delivery: the member's calls land under the organization layout.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	if _, err := ct.StartLogging(ctx, &cloudtrail.StartLoggingInput{Name: aws.String("org")}); err != nil {
		t.Fatal(err)
	}
	bobWest.ListTrails(ctx, &cloudtrail.ListTrailsInput{})
	want := regexp.MustCompile(`^AWSLogs/o-abcdefghij/222222222222/CloudTrail/us-west-2/\d{4}/\d{2}/\d{2}/222222222222_CloudTrail_us-west-2_\d{8}T\d{4}Z_[A-Za-z0-9]{16}\.json\.gz$`)
	for deadline := testwait.End(t); ; time.Sleep(300 * time.Millisecond) {
		found := false
		for k := range localFiles(t, logs) {
			found = found || want.MatchString(k)
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no member log file under the organization layout: %v", localFiles(t, logs))
		}
	}
}

// ListTrails pages 50 trails at a time with a NextToken the SDK's
// paginator follows to the end: every trail of the caller once, no other
// account's; a garbage token is OperationNotPermittedException (ListTrails
// models no token error; that is one of its two modeled errors).
func TestListTrailsPages(t *testing.T) {
	ctx := context.Background()
	ts := startServer(t, fmt.Sprintf(twoAccounts, 90)+"trails:\n  max_per_region: 60\n", "")
	ct := alice(ts)
	want := map[string]bool{}
	for i := range 53 {
		name := fmt.Sprintf("t-%02d", i)
		if _, err := ct.CreateTrail(ctx, &cloudtrail.CreateTrailInput{Name: aws.String(name), S3BucketName: aws.String("cairn-logs")}); err != nil {
			t.Fatal(err)
		}
		want[name] = true
	}
	bob := ts.client("AKIABOB0000000000001", "bob-secret-key", "us-east-1")
	if _, err := bob.CreateTrail(ctx, &cloudtrail.CreateTrailInput{Name: aws.String("bobs"), S3BucketName: aws.String("cairn-logs")}); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	pages := 0
	for p := cloudtrail.NewListTrailsPaginator(ct, &cloudtrail.ListTrailsInput{}); p.HasMorePages(); {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, tr := range out.Trails {
			got[aws.ToString(tr.Name)]++
		}
	}
	if pages != 2 || len(got) != len(want) {
		t.Errorf("%d pages, %d trails; want 2 pages, %d trails", pages, len(got), len(want))
	}
	for name, n := range got {
		if !want[name] || n != 1 {
			t.Errorf("trail %s listed %d times (want: %v)", name, n, want[name])
		}
	}
	for _, tok := range []string{"garbage!", "dHJhaWxzL3YxOg", strings.Repeat("A", 3000)} {
		if _, err := ct.ListTrails(ctx, &cloudtrail.ListTrailsInput{NextToken: aws.String(tok)}); errCode(err) != "OperationNotPermittedException" {
			t.Errorf("ListTrails(NextToken %.20q) = %v", tok, err)
		}
	}
}
