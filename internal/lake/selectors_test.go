package lake

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/cairn-audit/cairn/internal/audit"
)

// field builds a wire field selector.
func field(field string, equals ...string) types.AdvancedFieldSelector {
	return types.AdvancedFieldSelector{Field: aws.String(field), Equals: equals}
}

func mgmt(more ...types.AdvancedFieldSelector) types.AdvancedEventSelector {
	return types.AdvancedEventSelector{FieldSelectors: append([]types.AdvancedFieldSelector{field("eventCategory", "Management")}, more...)}
}

// syncRecords appends management records of account 111111111111, one per
// event name, and brings them into the Lake.
func syncRecords(t *testing.T, e *env, names ...string) {
	t.Helper()
	ctx := context.Background()
	var recs []audit.Record
	for i, n := range names {
		raw := fmt.Sprintf(`{"eventVersion":"1.09","eventTime":"2026-01-02T03:04:%02dZ","eventSource":"s3.amazonaws.com","eventName":%q,"awsRegion":"us-east-1","eventID":"%s","eventType":"AwsApiCall","readOnly":%t,"recipientAccountId":"111111111111","eventCategory":"Management","managementEvent":true,"userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::111111111111:user/u"}}`,
			i%60, n, audit.NewID(), strings.HasPrefix(n, "Get"))
		r, err := audit.Extract([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	if _, err := e.store.Append(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if _, err := e.lake.Sync(ctx, e.store); err != nil {
		t.Fatal(err)
	}
}

// eventNames returns the names of the S3 events a store holds (the
// API's own records of the test's calls left out), sorted, joined by ",".
func eventNames(t *testing.T, c *cloudtrail.Client, id string) string {
	t.Helper()
	var names []string
	for _, row := range runQuery(t, c, `SELECT eventName FROM `+id+` WHERE eventSource = 's3.amazonaws.com' ORDER BY eventName`) {
		names = append(names, row["eventName"])
	}
	return strings.Join(names, ",")
}

func storeID(arn *string) string {
	s := aws.ToString(arn)
	return s[strings.LastIndex(s, "/")+1:]
}

// TestStoreSelectorsValidatedAsAWS: CreateEventDataStore and
// UpdateEventDataStore refuse the selectors CloudTrail refuses (a field
// AWS does not know above all: before, Lake took it and it matched every
// event) with InvalidEventSelectorsException, and a refused update leaves
// the store as it was.
func TestStoreSelectorsValidatedAsAWS(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.client("AKIAAAAAAAAAAAAAAAAA")
	six := make([]types.AdvancedEventSelector, 6)
	for i := range six {
		six[i] = mgmt()
	}
	refused := map[string][]types.AdvancedEventSelector{
		"unknown field":            {mgmt(field("foo", "x"))},
		"unknown nested field":     {mgmt(field("requestParameters.bucketName", "b"))},
		"field in the wrong case":  {mgmt(field("EventName", "GetObject"))},
		"field with bad character": {mgmt(field("event-name", "x"))},
		"no value":                 {mgmt(field("eventName"))},
		"empty value":              {mgmt(field("eventName", ""))},
		"readOnly not a boolean":   {mgmt(field("readOnly", "maybe"))},
		"StartsWith on readOnly":   {mgmt(types.AdvancedFieldSelector{Field: aws.String("readOnly"), StartsWith: []string{"t"}})},
		"no eventCategory":         {{FieldSelectors: []types.AdvancedFieldSelector{field("eventName", "x")}}},
		"two categories":           {{FieldSelectors: []types.AdvancedFieldSelector{field("eventCategory", "Management", "Data")}}},
		"unknown category":         {{FieldSelectors: []types.AdvancedFieldSelector{field("eventCategory", "Everything")}}},
		"two kinds of events":      {mgmt(), {FieldSelectors: []types.AdvancedFieldSelector{field("eventCategory", "Insight")}}},
		"six selectors":            six,
		"no field selectors":       {{Name: aws.String("empty"), FieldSelectors: []types.AdvancedFieldSelector{}}},
	}
	for name, sels := range refused {
		_, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("refused"), AdvancedEventSelectors: sels})
		if code(err) != "InvalidEventSelectorsException" {
			t.Errorf("create, %s: %v; want InvalidEventSelectorsException", name, err)
		}
	}
	// What AWS takes is taken, as before.
	accepted := map[string][]types.AdvancedEventSelector{
		"default":            nil,
		"event name":         {mgmt(field("eventName", "GetObject", "PutObject"))},
		"every field":        {mgmt(field("eventSource", "s3.amazonaws.com"), field("eventName", "x"), field("eventType", "AwsApiCall"), field("readOnly", "true"), field("errorCode", "AccessDenied"), field("userIdentity.arn", "arn:aws:iam::111111111111:user/u"), field("sessionCredentialFromConsole", "true"), field("vpcEndpointId", "vpce-1"), field("resources.ARN", "arn:aws:s3:::b"))},
		"data and network":   {{FieldSelectors: []types.AdvancedFieldSelector{field("eventCategory", "Data"), field("resources.type", "AWS::S3::Object")}}, {FieldSelectors: []types.AdvancedFieldSelector{field("eventCategory", "NetworkActivity")}}},
		"negative operators": {mgmt(types.AdvancedFieldSelector{Field: aws.String("eventName"), NotStartsWith: []string{"Get"}, NotEndsWith: []string{"Tags"}})},
		"custom events":      {{FieldSelectors: []types.AdvancedFieldSelector{field("eventCategory", "ActivityAuditLog")}}},
	}
	i := 0
	for name, sels := range accepted {
		i++
		if _, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String(fmt.Sprintf("ok-%d", i)), AdvancedEventSelectors: sels}); err != nil {
			t.Errorf("create, %s: %v", name, err)
		}
	}

	st, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("updated"),
		AdvancedEventSelectors: []types.AdvancedEventSelector{mgmt(field("eventName", "GetObject"))}})
	if err != nil {
		t.Fatal(err)
	}
	for name, sels := range refused {
		_, err := a.UpdateEventDataStore(ctx, &cloudtrail.UpdateEventDataStoreInput{EventDataStore: st.EventDataStoreArn, AdvancedEventSelectors: sels})
		if code(err) != "InvalidEventSelectorsException" {
			t.Errorf("update, %s: %v; want InvalidEventSelectorsException", name, err)
		}
	}
	g, err := a.GetEventDataStore(ctx, &cloudtrail.GetEventDataStoreInput{EventDataStore: st.EventDataStoreArn})
	if err != nil {
		t.Fatal(err)
	}
	if len(g.AdvancedEventSelectors) != 1 || len(g.AdvancedEventSelectors[0].FieldSelectors) != 2 ||
		aws.ToString(g.AdvancedEventSelectors[0].FieldSelectors[1].Field) != "eventName" {
		t.Errorf("a refused update changed the selectors: %+v", g.AdvancedEventSelectors)
	}
}

// TestStoreSelectorsSelect: valid selectors take the events they name, and
// nothing else.
func TestStoreSelectorsSelect(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.client("AKIAAAAAAAAAAAAAAAAA")
	stores := map[string]struct {
		sels []types.AdvancedEventSelector
		want string
	}{
		"all":      {nil, "DeleteBucket,GetBucketTags,GetObject,PutObject"},
		"named":    {[]types.AdvancedEventSelector{mgmt(field("eventName", "GetObject", "PutObject"))}, "GetObject,PutObject"},
		"writes":   {[]types.AdvancedEventSelector{mgmt(field("readOnly", "false"))}, "DeleteBucket,PutObject"},
		"negative": {[]types.AdvancedEventSelector{mgmt(types.AdvancedFieldSelector{Field: aws.String("eventName"), NotStartsWith: []string{"Delete"}, NotEndsWith: []string{"Tags"}})}, "GetObject,PutObject"},
		"any-of":   {[]types.AdvancedEventSelector{mgmt(field("eventName", "DeleteBucket")), mgmt(types.AdvancedFieldSelector{Field: aws.String("eventName"), EndsWith: []string{"Tags"}})}, "DeleteBucket,GetBucketTags"},
		"none":     {[]types.AdvancedEventSelector{mgmt(field("eventSource", "ec2.amazonaws.com"))}, ""},
	}
	ids := map[string]string{}
	for name, s := range stores {
		st, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String(name), AdvancedEventSelectors: s.sels})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ids[name] = storeID(st.EventDataStoreArn)
	}
	syncRecords(t, e, "GetObject", "PutObject", "DeleteBucket", "GetBucketTags")
	for name, s := range stores {
		if got := eventNames(t, a, ids[name]); got != s.want {
			t.Errorf("%s holds %q; want %q", name, got, s.want)
		}
	}
}

// TestStoreWithRefusedSelectorsLoads: a store saved in lake.json with a
// selector validation now refuses (an unknown field, which used to match
// every event) still opens, is listed and queried, and the warning names
// it; the selector holding the unknown field takes no event, the store's
// other selectors still do.
func TestStoreWithRefusedSelectorsLoads(t *testing.T) {
	dir := t.TempDir()
	const id = "0a1b2c3d-0000-4000-8000-000000000001"
	reg := `{"stores":[{"id":"` + id + `","account":"111111111111","region":"us-east-1","name":"old","status":"ENABLED",
	"selectors":[{"Name":"unknown","FieldSelectors":[{"Field":"eventCategory","Equals":["Management"]},{"Field":"requestParameters.bucketName","Equals":["b"]}]},
	             {"FieldSelectors":[{"Field":"eventCategory","Equals":["Management"]},{"Field":"eventName","Equals":["PutObject"]}]}],
	"multiRegion":true,"retentionDays":366,"terminationProtection":false,"billingMode":"EXTENDABLE_RETENTION_PRICING",
	"created":"2026-01-01T00:00:00Z","updated":"2026-01-01T00:00:00Z"}],"channels":[]}`
	if err := os.WriteFile(filepath.Join(dir, registryFile), []byte(reg), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	e := newEnvIn(t, dir, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "store="+id) {
		t.Errorf("no warning naming the store: %s", logs.String())
	}
	a := e.client("AKIAAAAAAAAAAAAAAAAA")
	g, err := a.GetEventDataStore(context.Background(), &cloudtrail.GetEventDataStoreInput{EventDataStore: aws.String(id)})
	if err != nil || len(g.AdvancedEventSelectors) != 2 {
		t.Fatalf("the store is not served as saved: %v %+v", err, g)
	}
	syncRecords(t, e, "GetObject", "PutObject", "DeleteBucket")
	if got := eventNames(t, a, id); got != "PutObject" {
		t.Errorf("the store holds %q; want PutObject (the unknown field matching nothing)", got)
	}
	// Its selectors can be replaced by valid ones.
	if _, err := a.UpdateEventDataStore(context.Background(), &cloudtrail.UpdateEventDataStoreInput{EventDataStore: aws.String(id),
		AdvancedEventSelectors: []types.AdvancedEventSelector{mgmt()}}); err != nil {
		t.Errorf("update: %v", err)
	}
}
