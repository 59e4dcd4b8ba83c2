package lake

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/cairn-audit/cairn/internal/cloudtrailmodel"
)

// call sends a CloudTrail operation's raw JSON body signed with key and
// returns the status and the decoded answer.
func (e *env) call(t *testing.T, key, op, body string) (int, map[string]any) {
	t.Helper()
	r, _ := http.NewRequest("POST", e.url+"/", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-amz-json-1.1")
	r.Header.Set("X-Amz-Target", "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101."+op)
	return e.send(t, key, "cloudtrail", r, []byte(body))
}

// send signs r, whose body is body, with key for service in us-east-1,
// sends it and returns the status and the decoded JSON answer.
func (e *env) send(t *testing.T, key, service string, r *http.Request, body []byte) (int, map[string]any) {
	t.Helper()
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: key, SecretAccessKey: "secret" + key},
		r, hex.EncodeToString(sum[:]), service, "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s %s: response %q: %v", r.Method, r.URL, b, err)
	}
	return resp.StatusCode, out
}

// modeledErr checks that err is one of the errors the botocore model
// documents for op (so boto3 maps it to an exception class) and is want.
func modeledErr(t *testing.T, op string, err error, want string) {
	t.Helper()
	mop, _ := cloudtrailmodel.Operation(op)
	if c := code(err); c != want || !slices.Contains(mop.Errors, c) {
		t.Errorf("%s: %v; want %s, one of its modeled errors", op, err, want)
	}
}

func tagsOf(t *testing.T, c *cloudtrail.Client, arn string) map[string]string {
	t.Helper()
	out, err := c.ListTags(context.Background(), &cloudtrail.ListTagsInput{ResourceIdList: []string{arn}})
	if err != nil {
		t.Fatalf("ListTags %s: %v", arn, err)
	}
	if len(out.ResourceTagList) != 1 || aws.ToString(out.ResourceTagList[0].ResourceId) != arn {
		t.Fatalf("ListTags %s = %+v", arn, out.ResourceTagList)
	}
	m := map[string]string{}
	for _, tg := range out.ResourceTagList[0].TagsList {
		m[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	return m
}

func tagList(kv ...string) []types.Tag {
	var out []types.Tag
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, types.Tag{Key: aws.String(kv[i]), Value: aws.String(kv[i+1])})
	}
	return out
}

// TestTagsOnStoresAndChannels: event data stores and channels are tagged
// as AWS tags them (AddTags, ListTags, RemoveTags: "You can tag a trail or
// event data store, ... or channel", AWS CloudTrail API Reference,
// AddTags): CreateEventDataStore's TagsList and CreateChannel's Tags are
// kept (Terraform's aws_cloudtrail_event_data_store reads them back with
// ListTags after every create), a resource holds at most 50 tags with keys
// of 1 to 128 characters and values of at most 256 ("Tag keys... Tag
// values...", API Reference, Tag), the tags survive a restart, and another
// account's ARN tells nothing (CloudTrailARNInvalidException "AccountID
// in ARN is wrong, you can only access resources with AccountID ...", as
// AWS answers ListTags for an ARN of another account). Every error is one
// the model documents for its operation.
func TestTagsOnStoresAndChannels(t *testing.T) {
	dir := t.TempDir()
	e := newEnvIn(t, dir, Options{})
	ctx := context.Background()
	a, b := e.client("AKIAAAAAAAAAAAAAAAAA"), e.client("AKIABBBBBBBBBBBBBBBB")

	st, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("tagged"),
		TagsList: tagList("env", "prod", "team", "sec")})
	if err != nil {
		t.Fatal(err)
	}
	storeARN := aws.ToString(st.EventDataStoreArn)
	if got := tagsOf(t, a, storeARN); !equalTags(got, "env", "prod", "team", "sec") {
		t.Errorf("store tags after CreateEventDataStore = %v", got)
	}
	custom, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("custom"),
		AdvancedEventSelectors: []types.AdvancedEventSelector{{FieldSelectors: []types.AdvancedFieldSelector{{Field: aws.String("eventCategory"), Equals: []string{"ActivityAuditLog"}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := a.CreateChannel(ctx, &cloudtrail.CreateChannelInput{Name: aws.String("app"), Source: aws.String("Custom"),
		Destinations: []types.Destination{{Type: types.DestinationTypeEventDataStore, Location: custom.EventDataStoreArn}},
		Tags:         tagList("owner", "app-team")})
	if err != nil {
		t.Fatal(err)
	}
	chARN := aws.ToString(ch.ChannelArn)
	if got := tagsOf(t, a, chARN); !equalTags(got, "owner", "app-team") {
		t.Errorf("channel tags after CreateChannel = %v", got)
	}

	for _, arn := range []string{storeARN, chARN} {
		// AddTags replaces a key's value and adds new keys.
		if _, err := a.AddTags(ctx, &cloudtrail.AddTagsInput{ResourceId: &arn, TagsList: tagList("env", "dev", "cost", "42")}); err != nil {
			t.Fatalf("AddTags %s: %v", arn, err)
		}
		// RemoveTags by key, and by key and value (a value that does not
		// match keeps the tag).
		if _, err := a.RemoveTags(ctx, &cloudtrail.RemoveTagsInput{ResourceId: &arn, TagsList: []types.Tag{{Key: aws.String("env")}, {Key: aws.String("cost"), Value: aws.String("other")}}}); err != nil {
			t.Fatalf("RemoveTags %s: %v", arn, err)
		}
		got := tagsOf(t, a, arn)
		if _, ok := got["env"]; ok || got["cost"] != "42" {
			t.Errorf("%s tags after AddTags and RemoveTags = %v", arn, got)
		}

		// Limits (AddTags): 50 tags a resource, key 1-128 not aws:, value <= 256.
		var many []string
		for i := range 50 {
			many = append(many, fmt.Sprintf("k%02d", i), "v")
		}
		_, err := a.AddTags(ctx, &cloudtrail.AddTagsInput{ResourceId: &arn, TagsList: tagList(many...)})
		modeledErr(t, "AddTags", err, "TagsLimitExceededException")
		for _, bad := range [][]string{{"", "v"}, {strings.Repeat("k", 129), "v"}, {"k", strings.Repeat("v", 257)}, {"aws:reserved", "v"}} {
			_, err := a.AddTags(ctx, &cloudtrail.AddTagsInput{ResourceId: &arn, TagsList: tagList(bad...)})
			modeledErr(t, "AddTags", err, "InvalidTagParameterException")
		}
		// Another account's ARN, for each operation.
		_, err = b.AddTags(ctx, &cloudtrail.AddTagsInput{ResourceId: &arn, TagsList: tagList("x", "y")})
		modeledErr(t, "AddTags", err, "CloudTrailARNInvalidException")
		_, err = b.RemoveTags(ctx, &cloudtrail.RemoveTagsInput{ResourceId: &arn, TagsList: tagList("owner", "")})
		modeledErr(t, "RemoveTags", err, "CloudTrailARNInvalidException")
		_, err = b.ListTags(ctx, &cloudtrail.ListTagsInput{ResourceIdList: []string{arn}})
		modeledErr(t, "ListTags", err, "CloudTrailARNInvalidException")
		if !strings.Contains(err.Error(), "AccountID in ARN is wrong, you can only access resources with AccountID 222222222222") {
			t.Errorf("another account's ARN: %v", err)
		}
	}

	// Creating with too many or bad tags.
	var many []string
	for i := range 51 {
		many = append(many, fmt.Sprintf("k%02d", i), "v")
	}
	_, err = a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("many"), TagsList: tagList(many...)})
	modeledErr(t, "CreateEventDataStore", err, "InvalidTagParameterException")
	_, err = a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("badkey"), TagsList: tagList("aws:x", "v")})
	modeledErr(t, "CreateEventDataStore", err, "InvalidTagParameterException")
	_, err = a.CreateChannel(ctx, &cloudtrail.CreateChannelInput{Name: aws.String("many"), Source: aws.String("Custom"),
		Destinations: []types.Destination{{Type: types.DestinationTypeEventDataStore, Location: custom.EventDataStoreArn}}, Tags: tagList(many...)})
	modeledErr(t, "CreateChannel", err, "TagsLimitExceededException")

	// Resources that do not exist, ARNs that are not valid, types not tagged.
	gone := storeARN[:strings.LastIndex(storeARN, "/")+1] + "00000000-0000-0000-0000-000000000000"
	_, err = a.ListTags(ctx, &cloudtrail.ListTagsInput{ResourceIdList: []string{gone}})
	modeledErr(t, "ListTags", err, "EventDataStoreNotFoundException")
	_, err = a.AddTags(ctx, &cloudtrail.AddTagsInput{ResourceId: &gone, TagsList: tagList("a", "b")})
	modeledErr(t, "AddTags", err, "EventDataStoreNotFoundException")
	goneCh := chARN[:strings.LastIndex(chARN, "/")+1] + "00000000-0000-0000-0000-000000000000"
	_, err = a.RemoveTags(ctx, &cloudtrail.RemoveTagsInput{ResourceId: &goneCh, TagsList: tagList("a", "b")})
	modeledErr(t, "RemoveTags", err, "ChannelNotFoundException")
	_, err = a.ListTags(ctx, &cloudtrail.ListTagsInput{ResourceIdList: []string{goneCh}})
	modeledErr(t, "ListTags", err, "ResourceNotFoundException") // ListTags models no ChannelNotFound
	_, err = a.ListTags(ctx, &cloudtrail.ListTagsInput{ResourceIdList: []string{"not-an-arn"}})
	modeledErr(t, "ListTags", err, "CloudTrailARNInvalidException")
	dash := "arn:aws:cloudtrail:us-east-1:111111111111:dashboard/d"
	_, err = a.AddTags(ctx, &cloudtrail.AddTagsInput{ResourceId: &dash, TagsList: tagList("a", "b")})
	modeledErr(t, "AddTags", err, "ResourceTypeNotSupportedException")

	// The tags survive a restart.
	want := tagsOf(t, a, storeARN)
	wantCh := tagsOf(t, a, chARN)
	e.lake.Close()
	e = newEnvIn(t, dir, Options{})
	a = e.client("AKIAAAAAAAAAAAAAAAAA")
	if got := tagsOf(t, a, storeARN); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("store tags after a restart = %v; want %v", got, want)
	}
	if got := tagsOf(t, a, chARN); fmt.Sprint(got) != fmt.Sprint(wantCh) {
		t.Errorf("channel tags after a restart = %v; want %v", got, wantCh)
	}
}

func equalTags(got map[string]string, kv ...string) bool {
	if len(got) != len(kv)/2 {
		return false
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if v, ok := got[kv[i]]; !ok || v != kv[i+1] {
			return false
		}
	}
	return true
}

// TestIngestionStatus: StartEventDataStoreIngestion starts only a store
// whose ingestion is stopped, and StopEventDataStoreIngestion stops only
// an ENABLED one; otherwise InvalidEventDataStoreStatusException (API
// Reference, StartEventDataStoreIngestion: "The event data store must be
// in STOPPED_INGESTION status"; StopEventDataStoreIngestion: "must be in
// ENABLED status"). A store of custom events is
// InvalidEventDataStoreCategoryException.
func TestIngestionStatus(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.client("AKIAAAAAAAAAAAAAAAAA")
	st, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("store")})
	if err != nil {
		t.Fatal(err)
	}
	ref := st.EventDataStoreArn
	status := func() types.EventDataStoreStatus {
		g, err := a.GetEventDataStore(ctx, &cloudtrail.GetEventDataStoreInput{EventDataStore: ref})
		if err != nil {
			t.Fatal(err)
		}
		return g.Status
	}
	_, err = a.StartEventDataStoreIngestion(ctx, &cloudtrail.StartEventDataStoreIngestionInput{EventDataStore: ref})
	modeledErr(t, "StartEventDataStoreIngestion", err, "InvalidEventDataStoreStatusException")
	if _, err := a.StopEventDataStoreIngestion(ctx, &cloudtrail.StopEventDataStoreIngestionInput{EventDataStore: ref}); err != nil {
		t.Fatalf("Stop on ENABLED: %v", err)
	}
	if s := status(); s != types.EventDataStoreStatusStoppedIngestion {
		t.Errorf("status after Stop = %s", s)
	}
	_, err = a.StopEventDataStoreIngestion(ctx, &cloudtrail.StopEventDataStoreIngestionInput{EventDataStore: ref})
	modeledErr(t, "StopEventDataStoreIngestion", err, "InvalidEventDataStoreStatusException")
	if _, err := a.StartEventDataStoreIngestion(ctx, &cloudtrail.StartEventDataStoreIngestionInput{EventDataStore: ref}); err != nil {
		t.Fatalf("Start on STOPPED_INGESTION: %v", err)
	}
	if s := status(); s != types.EventDataStoreStatusEnabled {
		t.Errorf("status after Start = %s", s)
	}
	custom, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("custom"),
		AdvancedEventSelectors: []types.AdvancedEventSelector{{FieldSelectors: []types.AdvancedFieldSelector{{Field: aws.String("eventCategory"), Equals: []string{"ActivityAuditLog"}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.StopEventDataStoreIngestion(ctx, &cloudtrail.StopEventDataStoreIngestionInput{EventDataStore: custom.EventDataStoreArn})
	modeledErr(t, "StopEventDataStoreIngestion", err, "InvalidEventDataStoreCategoryException")
}

// TestListShapes: what the list and import operations answer has the
// model's members only. ListEventDataStores' entries are the model's
// EventDataStore shape (ARN, name, and eight members AWS marks
// deprecated), without BillingMode or KmsKeyId, which GetEventDataStore
// answers; an import's ImportSource.S3 leaves out S3BucketRegion and
// S3BucketAccessRoleArn cairn does not keep, rather than answering "".
func TestListShapes(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "empty.json"), []byte(`{"Records":[]}`), 0o600)
	e := newEnv(t, dir)
	ctx := context.Background()
	a := e.client("AKIAAAAAAAAAAAAAAAAA")
	st, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("store"), StartIngestion: aws.Bool(false)})
	if err != nil {
		t.Fatal(err)
	}
	_, out := e.call(t, "AKIAAAAAAAAAAAAAAAAA", "ListEventDataStores", `{}`)
	list, _ := out["EventDataStores"].([]any)
	if len(list) != 1 {
		t.Fatalf("ListEventDataStores = %v", out)
	}
	// The members of the model's EventDataStore shape (an output shape:
	// cloudtrailmodel holds input shapes only).
	modelMembers := []string{"AdvancedEventSelectors", "CreatedTimestamp", "EventDataStoreArn", "MultiRegionEnabled", "Name",
		"OrganizationEnabled", "RetentionPeriod", "Status", "TerminationProtectionEnabled", "UpdatedTimestamp"}
	for k := range list[0].(map[string]any) {
		if !slices.Contains(modelMembers, k) {
			t.Errorf("ListEventDataStores entry has %s, not a member of the model's EventDataStore", k)
		}
	}
	_, g := e.call(t, "AKIAAAAAAAAAAAAAAAAA", "GetEventDataStore", `{"EventDataStore":"`+aws.ToString(st.EventDataStoreArn)+`"}`)
	if g["BillingMode"] != "EXTENDABLE_RETENTION_PRICING" {
		t.Errorf("GetEventDataStore BillingMode = %v", g["BillingMode"])
	}

	im, err := a.StartImport(ctx, &cloudtrail.StartImportInput{Destinations: []string{aws.ToString(st.EventDataStoreArn)},
		ImportSource: &types.ImportSource{S3: &types.S3ImportSource{S3LocationUri: aws.String(dir), S3BucketRegion: aws.String("us-east-1"), S3BucketAccessRoleArn: aws.String("arn:aws:iam::111111111111:role/x")}}})
	if err != nil {
		t.Fatal(err)
	}
	waitImport(t, a, im.ImportId)
	_, gi := e.call(t, "AKIAAAAAAAAAAAAAAAAA", "GetImport", `{"ImportId":"`+aws.ToString(im.ImportId)+`"}`)
	s3, _ := gi["ImportSource"].(map[string]any)["S3"].(map[string]any)
	if s3["S3LocationUri"] == nil {
		t.Errorf("GetImport ImportSource = %v", gi["ImportSource"])
	}
	for _, k := range []string{"S3BucketRegion", "S3BucketAccessRoleArn"} {
		if v, ok := s3[k]; ok && v == "" {
			t.Errorf("GetImport answers %s as \"\"; AWS leaves out what it has not", k)
		}
	}
}

// TestPageTokens: every paginated Lake operation (ListEventDataStores,
// ListChannels, ListImports, ListImportFailures, ListQueries,
// GetQueryResults) pages to the end with aws-sdk-go-v2's paginators at
// one item a page, each NextToken within the model's PaginationToken (4 to
// 1000 characters, botocore service-2.json); a token altered, another
// operation's or another account's, or one of other filters is
// InvalidNextTokenException, a modeled error of each.
func TestPageTokens(t *testing.T) {
	dir := t.TempDir()
	for i := range 3 {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("broken%d.json", i)), []byte(`{"Records":[{"eventID":`), 0o600)
	}
	e := newEnv(t, dir)
	ctx := context.Background()
	a, b := e.client("AKIAAAAAAAAAAAAAAAAA"), e.client("AKIABBBBBBBBBBBBBBBB")
	live, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("live")})
	if err != nil {
		t.Fatal(err)
	}
	liveARN := aws.ToString(live.EventDataStoreArn)
	syncRecords(t, e, "PutObject", "GetObject", "DeleteObject")
	var store string
	for i := range 2 {
		st, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String(fmt.Sprintf("store%d", i)), StartIngestion: aws.Bool(false)})
		if err != nil {
			t.Fatal(err)
		}
		store = aws.ToString(st.EventDataStoreArn)
	}
	custom, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("custom"),
		AdvancedEventSelectors: []types.AdvancedEventSelector{{FieldSelectors: []types.AdvancedFieldSelector{{Field: aws.String("eventCategory"), Equals: []string{"ActivityAuditLog"}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := a.CreateChannel(ctx, &cloudtrail.CreateChannelInput{Name: aws.String(fmt.Sprintf("chan%d", i)), Source: aws.String("Custom"),
			Destinations: []types.Destination{{Type: types.DestinationTypeEventDataStore, Location: custom.EventDataStoreArn}}}); err != nil {
			t.Fatal(err)
		}
	}
	var importID *string
	for range 3 {
		im, err := a.StartImport(ctx, &cloudtrail.StartImportInput{Destinations: []string{store},
			ImportSource: &types.ImportSource{S3: &types.S3ImportSource{S3LocationUri: aws.String(dir), S3BucketRegion: aws.String("us-east-1"), S3BucketAccessRoleArn: aws.String("arn:aws:iam::111111111111:role/x")}}})
		if err != nil {
			t.Fatal(err)
		}
		waitImport(t, a, im.ImportId)
		importID = im.ImportId
	}
	var queryID string
	for range 3 {
		queryID = startQuery(t, a, `SELECT eventName FROM `+liveARN[strings.LastIndex(liveARN, "/")+1:]+` WHERE eventSource = 's3.amazonaws.com'`)
		waitQuery(t, a, queryID)
	}

	var tokens []string
	check := func(op string, n int, next func() (int, *string, error)) {
		t.Helper()
		got, pages := 0, 0
		for {
			k, tok, err := next()
			if err != nil {
				t.Fatalf("%s page %d: %v", op, pages+1, err)
			}
			got += k
			pages++
			if tok == nil {
				break
			}
			if l := len(*tok); l < 4 || l > 1000 {
				t.Errorf("%s NextToken %q: %d characters; the model's PaginationToken is 4 to 1000", op, *tok, l)
			}
			tokens = append(tokens, op+" "+*tok)
			if pages > 20 {
				t.Fatalf("%s: no end", op)
			}
		}
		if got != n || pages != n {
			t.Errorf("%s: %d items in %d pages; want %d in %d", op, got, pages, n, n)
		}
	}
	one := aws.Int32(1)
	p1 := cloudtrail.NewListEventDataStoresPaginator(a, &cloudtrail.ListEventDataStoresInput{MaxResults: one})
	check("ListEventDataStores", 4, func() (int, *string, error) {
		o, err := p1.NextPage(ctx)
		if err != nil {
			return 0, nil, err
		}
		return len(o.EventDataStores), o.NextToken, nil
	})
	p2 := cloudtrail.NewListChannelsPaginator(a, &cloudtrail.ListChannelsInput{MaxResults: one})
	check("ListChannels", 3, func() (int, *string, error) {
		o, err := p2.NextPage(ctx)
		if err != nil {
			return 0, nil, err
		}
		return len(o.Channels), o.NextToken, nil
	})
	p3 := cloudtrail.NewListImportsPaginator(a, &cloudtrail.ListImportsInput{MaxResults: one})
	check("ListImports", 3, func() (int, *string, error) {
		o, err := p3.NextPage(ctx)
		if err != nil {
			return 0, nil, err
		}
		return len(o.Imports), o.NextToken, nil
	})
	p4 := cloudtrail.NewListImportFailuresPaginator(a, &cloudtrail.ListImportFailuresInput{ImportId: importID, MaxResults: one})
	check("ListImportFailures", 3, func() (int, *string, error) {
		o, err := p4.NextPage(ctx)
		if err != nil {
			return 0, nil, err
		}
		return len(o.Failures), o.NextToken, nil
	})
	p5 := cloudtrail.NewListQueriesPaginator(a, &cloudtrail.ListQueriesInput{EventDataStore: &liveARN, MaxResults: one})
	check("ListQueries", 3, func() (int, *string, error) {
		o, err := p5.NextPage(ctx)
		if err != nil {
			return 0, nil, err
		}
		return len(o.Queries), o.NextToken, nil
	})
	p6 := cloudtrail.NewGetQueryResultsPaginator(a, &cloudtrail.GetQueryResultsInput{QueryId: &queryID, MaxQueryResults: one})
	check("GetQueryResults", 3, func() (int, *string, error) {
		o, err := p6.NextPage(ctx)
		if err != nil {
			return 0, nil, err
		}
		return len(o.QueryResultRows), o.NextToken, nil
	})

	// Every token is refused when altered, replayed on another
	// operation, by another account, or with other filters.
	tamper := func(tok string) string {
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil {
			t.Fatalf("token %q is not base64url: %v", tok, err)
		}
		raw[len(raw)/2] ^= 1
		return base64.RawURLEncoding.EncodeToString(raw)
	}
	replay := func(c *cloudtrail.Client, op, tok string, filters bool) error {
		var err error
		switch op {
		case "ListEventDataStores":
			_, err = c.ListEventDataStores(ctx, &cloudtrail.ListEventDataStoresInput{NextToken: &tok})
		case "ListChannels":
			_, err = c.ListChannels(ctx, &cloudtrail.ListChannelsInput{NextToken: &tok})
		case "ListImports":
			in := &cloudtrail.ListImportsInput{NextToken: &tok}
			if filters {
				in.ImportStatus = types.ImportStatusCompleted
			}
			_, err = c.ListImports(ctx, in)
		case "ListImportFailures":
			id := importID
			if filters {
				id = aws.String("00000000-0000-0000-0000-000000000000")
			}
			_, err = c.ListImportFailures(ctx, &cloudtrail.ListImportFailuresInput{ImportId: id, NextToken: &tok})
		case "ListQueries":
			in := &cloudtrail.ListQueriesInput{EventDataStore: &liveARN, NextToken: &tok}
			if filters {
				in.QueryStatus = types.QueryStatusFinished
			}
			_, err = c.ListQueries(ctx, in)
		case "GetQueryResults":
			_, err = c.GetQueryResults(ctx, &cloudtrail.GetQueryResultsInput{QueryId: &queryID, NextToken: &tok})
		}
		return err
	}
	ops := []string{"ListEventDataStores", "ListChannels", "ListImports", "ListImportFailures", "ListQueries", "GetQueryResults"}
	for _, ot := range tokens {
		op, tok, _ := strings.Cut(ot, " ")
		modeledErr(t, op, replay(a, op, tamper(tok), false), "InvalidNextTokenException")
		other := ops[(slices.Index(ops, op)+1)%len(ops)]
		modeledErr(t, other, replay(a, other, tok, false), "InvalidNextTokenException")
		if op != "GetQueryResults" && op != "ListQueries" && op != "ListImportFailures" { // bob cannot name alice's query, store or import
			modeledErr(t, op, replay(b, op, tok, false), "InvalidNextTokenException")
		}
		if op == "ListImports" || op == "ListQueries" {
			modeledErr(t, op, replay(a, op, tok, true), "InvalidNextTokenException")
		}
	}
	for _, bad := range []string{"1", "abcd", "0000000001", strings.Repeat("A", 1000)} {
		modeledErr(t, "ListImports", replay(a, "ListImports", bad, false), "InvalidNextTokenException")
	}
}
