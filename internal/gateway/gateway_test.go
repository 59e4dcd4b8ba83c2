package gateway

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/config"
	"github.com/cairn-audit/cairn/internal/mototest"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// startMoto is mototest.Start as a URL.
func startMoto(t testing.TB) *url.URL {
	u, err := url.Parse(mototest.Start(t))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// collector keeps the records the gateway enqueues.
type collector struct {
	mu   sync.Mutex
	recs []audit.Record
}

func (c *collector) Commit(_ context.Context, recs ...audit.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recs = append(c.recs, recs...)
	return nil
}

// last returns the last record named name, as an Event.
// Records are enqueued once the response is complete, which may be just
// after the client has read it: last waits up to 5 seconds.
func (c *collector) last(t *testing.T, name string) *audit.Event {
	t.Helper()
	return c.lastSince(t, name, 0)
}

// mark is the number of records collected so far; lastSince(mark) sees only
// records that arrived after it, so a test waiting for the record of a call
// cannot take an earlier call's record of the same operation.
func (c *collector) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.recs)
}

func (c *collector) lastSince(t *testing.T, name string, since int) *audit.Event {
	t.Helper()
	for deadline := testwait.End(t); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if ev := c.find(t, name, since); ev != nil {
			return ev
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var names []string
	for _, r := range c.recs {
		var ev audit.Event
		_ = json.Unmarshal(r.Raw, &ev)
		names = append(names, ev.EventName)
	}
	t.Fatalf("no %s record; have %v", name, names)
	return nil
}

func (c *collector) find(t *testing.T, name string, since int) *audit.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.recs) - 1; i >= since; i-- {
		var ev audit.Event
		if err := json.Unmarshal(c.recs[i].Raw, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.EventName == name {
			return &ev
		}
	}
	return nil
}

const testConfig = `accounts:
  - id: "111111111111"
    users:
      - name: alice
        access_keys:
          - id: AKIAALICE00000000001
            secret: alice-secret-key
`

// configPrincipals gives the gateway the users of a parsed config file, as
// cmd/cairn does.
type configPrincipals struct{ c *config.Config }

func (p configPrincipals) Principal(key string) (audit.Principal, bool) {
	cp, ok := p.c.Principal(key)
	return audit.Principal{AccountID: cp.AccountID, UserName: cp.UserName, ARN: cp.ARN, PrincipalID: cp.PrincipalID,
		AccessKeyID: cp.AccessKeyID}, ok
}

// testPrincipals returns the users of testConfig.
func testPrincipals(t *testing.T) Principals {
	t.Helper()
	c, err := config.Parse("t.yaml", []byte(testConfig))
	if err != nil {
		t.Fatal(err)
	}
	return configPrincipals{c}
}

type env struct {
	gw   *Gateway
	url  string
	rec  *collector
	cfg  aws.Config
	moto *url.URL
	// sessions is the gateway's sessions file (kept across restart).
	sessions string
}

func newEnv(t *testing.T) *env {
	e := &env{moto: startMoto(t), sessions: filepath.Join(t.TempDir(), "gateway-sessions.jsonl"), cfg: aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIAALICE00000000001", "alice-secret-key", ""),
	}}
	e.start(t)
	return e
}

// start runs a new gateway (and collector) on the same upstream and
// sessions file: a restart.
func (e *env) start(t *testing.T) {
	t.Helper()
	e.rec = &collector{}
	var err error
	e.gw, err = New(Config{Upstreams: map[string]*url.URL{"default": e.moto}, Principals: testPrincipals(t), Recorder: e.rec, DefaultAccount: "111111111111",
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)), SessionFile: e.sessions})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.gw)
	gw := e.gw
	t.Cleanup(func() { srv.Close(); gw.Close() })
	e.url = srv.URL
}

// realRecord returns the first real CloudTrail record of source/name in
// ../shared/testdata/real, or nil.
var (
	realOnce sync.Once
	realRecs map[string][]map[string]any
)

func realRecord(t *testing.T, source, name string) map[string]any {
	if rs := realRecords(t, source, name); len(rs) > 0 {
		return rs[0]
	}
	return nil
}

// realRecords returns every real record of source/name.
func realRecords(t *testing.T, source, name string) []map[string]any {
	realOnce.Do(func() {
		realRecs = map[string][]map[string]any{}
		root := "../../../shared/testdata/real"
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !(strings.HasSuffix(p, ".json") || strings.HasSuffix(p, ".json.gz")) {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return nil
			}
			if strings.HasSuffix(p, ".gz") {
				zr, err := gzip.NewReader(bytes.NewReader(b))
				if err != nil {
					return nil
				}
				if b, err = io.ReadAll(zr); err != nil {
					return nil
				}
			}
			var items []map[string]any
			var one map[string]any
			if json.Unmarshal(b, &one) == nil {
				if rs, ok := one["Records"].([]any); ok {
					for _, r := range rs {
						if m, ok := r.(map[string]any); ok {
							items = append(items, m)
						}
					}
				} else {
					items = append(items, one)
				}
			} else {
				for _, l := range bytes.Split(b, []byte("\n")) {
					var m map[string]any
					if json.Unmarshal(l, &m) == nil {
						items = append(items, m)
					}
				}
			}
			for _, m := range items {
				k := str(m["eventSource"]) + " " + str(m["eventName"])
				realRecs[k] = append(realRecs[k], m)
			}
			return nil
		})
	})
	return realRecs[source+" "+name]
}

// compareReal checks ev field by field against the real records of the same
// operation: eventSource, eventName, readOnly, category, the requestParameters
// keys every real record has, resource types and the userIdentity shape.
func compareReal(t *testing.T, ev *audit.Event) {
	t.Helper()
	real := realRecord(t, ev.EventSource, ev.EventName)
	if real == nil {
		t.Logf("%s %s: no real record to compare with", ev.EventSource, ev.EventName)
		return
	}
	if ro, ok := real["readOnly"].(bool); ok && (ev.ReadOnly == nil || *ev.ReadOnly != ro) {
		t.Errorf("%s: readOnly = %v, real %v", ev.EventName, *ev.ReadOnly, ro)
	}
	if cat := str(real["eventCategory"]); cat != "" && cat != ev.EventCategory {
		t.Errorf("%s: eventCategory = %s, real %s", ev.EventName, ev.EventCategory, cat)
	}
	// The requestParameters keys every real record of the operation has
	// (optional parameters differ from call to call).
	var common map[string]any
	for _, r := range realRecords(t, ev.EventSource, ev.EventName) {
		rp, ok := r["requestParameters"].(map[string]any)
		if !ok {
			common = nil
			break
		}
		if common == nil {
			common = maps.Clone(rp)
		}
		for k := range common {
			if _, ok := rp[k]; !ok {
				delete(common, k)
			}
		}
	}
	if common != nil {
		var ours map[string]any
		_ = json.Unmarshal(ev.RequestParameters, &ours)
		for k := range common {
			if _, ok := ours[k]; !ok {
				t.Errorf("%s: requestParameters lacks %q (every real record has %v, ours %v)", ev.EventName, k, keys(common), keys(ours))
			}
		}
	}
	if rs, ok := real["resources"].([]any); ok {
		for _, r := range rs {
			typ := str(r.(map[string]any)["type"])
			if !slices.ContainsFunc(ev.Resources, func(e audit.EventResource) bool { return e.Type == typ }) {
				t.Errorf("%s: resources lack %s: %+v", ev.EventName, typ, ev.Resources)
			}
		}
	}
	ui := real["userIdentity"].(map[string]any)
	if str(ui["type"]) == ev.UserIdentity.Type {
		for _, k := range []string{"principalId", "arn", "accountId", "accessKeyId", "userName"} {
			_, want := ui[k]
			b, _ := json.Marshal(ev.UserIdentity)
			if want && !strings.Contains(string(b), `"`+k+`"`) {
				t.Errorf("%s: userIdentity lacks %s", ev.EventName, k)
			}
		}
	}
}

func keys(m map[string]any) []string {
	var k []string
	for x := range m {
		k = append(k, x)
	}
	slices.Sort(k)
	return k
}

func TestS3ThroughGateway(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cli := s3.NewFromConfig(e.cfg, func(o *s3.Options) { o.BaseEndpoint = aws.String(e.url); o.UsePathStyle = true })
	// x-amz-acl, as the real records' callers sent it.
	if _, err := cli.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bucket-one"), ACL: s3types.BucketCannedACLPrivate}); err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("x"), 3<<20)
	if _, err := cli.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bucket-one"), Key: aws.String("dir/a b.txt"), Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
	out, err := cli.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bucket-one"), Key: aws.String("dir/a b.txt")})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if !bytes.Equal(got, body) {
		t.Fatalf("GetObject returned %d bytes, want %d", len(got), len(body))
	}
	if _, err := cli.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: aws.String("bucket-one"), Tagging: nil}); err == nil {
		t.Log("PutBucketTagging without tagging accepted")
	}
	_, _ = cli.GetBucketAcl(ctx, &s3.GetBucketAclInput{Bucket: aws.String("bucket-one")})
	_, _ = cli.ListBuckets(ctx, &s3.ListBucketsInput{})
	_, err = cli.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bucket-one"), Key: aws.String("missing")})
	if err == nil {
		t.Fatal("GetObject of a missing key succeeded")
	}
	_, _ = cli.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("bucket-one")})

	ev := e.rec.last(t, "CreateBucket")
	if ev.EventSource != "s3.amazonaws.com" || ev.EventCategory != "Management" || *ev.ReadOnly || ev.UserIdentity.Type != "IAMUser" ||
		ev.UserIdentity.UserName != "alice" || ev.RecipientAccountID != "111111111111" || ev.AWSRegion != "us-east-1" {
		t.Errorf("CreateBucket: %+v %+v", ev, ev.UserIdentity)
	}
	compareReal(t, ev)
	put := e.rec.last(t, "PutObject")
	var rp map[string]any
	_ = json.Unmarshal(put.RequestParameters, &rp)
	if put.EventCategory != "Data" || *put.ManagementEvent || rp["key"] != "dir/a b.txt" || rp["bucketName"] != "bucket-one" {
		t.Errorf("PutObject: category %s params %s", put.EventCategory, put.RequestParameters)
	}
	if len(put.Resources) != 2 || put.Resources[0].ARN != "arn:aws:s3:::bucket-one/dir/a b.txt" || put.Resources[1].Type != "AWS::S3::Bucket" {
		t.Errorf("PutObject resources: %+v", put.Resources)
	}
	if strings.Contains(string(put.RequestParameters), "xxxx") {
		t.Error("object payload in requestParameters")
	}
	miss := e.rec.last(t, "GetObject")
	if miss.ErrorCode != "NoSuchKey" || miss.ErrorMessage == "" || miss.RequestID == "" {
		t.Errorf("GetObject error: %q %q requestID %q", miss.ErrorCode, miss.ErrorMessage, miss.RequestID)
	}
	for _, n := range []string{"GetBucketAcl", "ListBuckets"} {
		compareReal(t, e.rec.last(t, n))
	}
	if lo := e.rec.last(t, "ListObjectsV2"); lo.EventCategory != "Data" || !*lo.ReadOnly {
		t.Errorf("ListObjectsV2: %s readOnly %v", lo.EventCategory, *lo.ReadOnly)
	}
}

func TestJSONAndQueryServices(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ep := func(o *string) *string { return aws.String(e.url) }

	ddb := dynamodb.NewFromConfig(e.cfg, func(o *dynamodb.Options) { o.BaseEndpoint = ep(nil) })
	_, err := ddb.CreateTable(ctx, &dynamodb.CreateTableInput{TableName: aws.String("t1"),
		AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: ddbtypes.ScalarAttributeTypeS}},
		KeySchema:            []ddbtypes.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: ddbtypes.KeyTypeHash}},
		BillingMode:          ddbtypes.BillingModePayPerRequest})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ddb.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("t1"),
		Item: map[string]ddbtypes.AttributeValue{"id": &ddbtypes.AttributeValueMemberS{Value: "1"}}}); err != nil {
		t.Fatal(err)
	}
	_, err = ddb.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("nope")})
	if err == nil {
		t.Fatal("DescribeTable of a missing table succeeded")
	}
	ct := e.rec.last(t, "CreateTable")
	if ct.EventSource != "dynamodb.amazonaws.com" || *ct.ReadOnly || ct.EventCategory != "Management" ||
		!strings.Contains(string(ct.RequestParameters), `"tableName":"t1"`) || len(ct.ResponseElements) == 0 {
		t.Errorf("CreateTable: %s / %s", ct.RequestParameters, ct.ResponseElements)
	}
	if len(ct.Resources) != 1 || ct.Resources[0].ARN != "arn:aws:dynamodb:us-east-1:111111111111:table/t1" {
		t.Errorf("CreateTable resources %+v", ct.Resources)
	}
	if pi := e.rec.last(t, "PutItem"); pi.EventCategory != "Data" {
		t.Errorf("PutItem category %s", pi.EventCategory)
	}
	if dt := e.rec.last(t, "DescribeTable"); dt.ErrorCode != "ResourceNotFoundException" || !*dt.ReadOnly || (len(dt.ResponseElements) != 0 && string(dt.ResponseElements) != "null") {
		t.Errorf("DescribeTable: %q %q %s", dt.ErrorCode, dt.ErrorMessage, dt.ResponseElements)
	}

	im := iam.NewFromConfig(e.cfg, func(o *iam.Options) { o.BaseEndpoint = ep(nil) })
	if _, err := im.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("bob"), Tags: []iamtypes.Tag{{Key: aws.String("team"), Value: aws.String("x")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := im.CreateLoginProfile(ctx, &iam.CreateLoginProfileInput{UserName: aws.String("bob"), Password: aws.String("Sup3r-secret!")}); err != nil {
		t.Fatal(err)
	}
	_, _ = im.ListUsers(ctx, &iam.ListUsersInput{})
	cu := e.rec.last(t, "CreateUser")
	if cu.EventSource != "iam.amazonaws.com" || cu.AWSRegion != "us-east-1" || !strings.Contains(string(cu.RequestParameters), `"userName":"bob"`) ||
		!strings.Contains(string(cu.ResponseElements), `"userName":"bob"`) {
		t.Errorf("CreateUser: %s / %s", cu.RequestParameters, cu.ResponseElements)
	}
	compareReal(t, cu)
	clp := e.rec.last(t, "CreateLoginProfile")
	// AWS leaves the password out (invictus-ir-aws_dataset …T1230Z_ZtUNbBkwAu98FPZb:
	// {"userName", "passwordResetRequired"}).
	if strings.Contains(string(clp.RequestParameters), "Sup3r") || strings.Contains(string(clp.RequestParameters), "password\"") {
		t.Errorf("password recorded: %s", clp.RequestParameters)
	}
	compareReal(t, e.rec.last(t, "ListUsers"))

	k := kms.NewFromConfig(e.cfg, func(o *kms.Options) { o.BaseEndpoint = ep(nil) })
	key, err := k.CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Encrypt(ctx, &kms.EncryptInput{KeyId: key.KeyMetadata.Arn, Plaintext: []byte("top secret")}); err != nil {
		t.Fatal(err)
	}
	enc := e.rec.last(t, "Encrypt")
	if !*enc.ReadOnly || strings.Contains(string(enc.RequestParameters), "dG9wIHNlY3JldA") || len(enc.Resources) != 1 {
		t.Errorf("Encrypt: readOnly %v params %s resources %+v", *enc.ReadOnly, enc.RequestParameters, enc.Resources)
	}
	// By alias: the resource is the key the response names, as AWS records it.
	if _, err := k.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/e2e"), TargetKeyId: key.KeyMetadata.KeyId}); err != nil {
		t.Fatal(err)
	}
	mark := e.rec.mark()
	if _, err := k.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String("alias/e2e"), Plaintext: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	// (moto answers the key's ID where AWS answers its ARN.)
	if enc := e.rec.lastSince(t, "Encrypt", mark); len(enc.Resources) != 1 || !strings.HasSuffix(enc.Resources[0].ARN, ":key/"+*key.KeyMetadata.KeyId) {
		t.Errorf("Encrypt by alias: resources %+v; want the key %s", enc.Resources, *key.KeyMetadata.KeyId)
	}
	compareReal(t, e.rec.last(t, "CreateKey"))

	q := sqs.NewFromConfig(e.cfg, func(o *sqs.Options) { o.BaseEndpoint = ep(nil) })
	qu, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("q1")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: qu.QueueUrl, MessageBody: aws.String("hi")}); err != nil {
		t.Fatal(err)
	}
	if sm := e.rec.last(t, "SendMessage"); sm.EventCategory != "Data" || sm.EventSource != "sqs.amazonaws.com" {
		t.Errorf("SendMessage: %s %s", sm.EventSource, sm.EventCategory)
	}
}

func TestAssumedRoleIdentity(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	st := sts.NewFromConfig(e.cfg, func(o *sts.Options) { o.BaseEndpoint = aws.String(e.url) })
	if _, err := st.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err != nil {
		t.Fatal(err)
	}
	compareReal(t, e.rec.last(t, "GetCallerIdentity"))
	out, err := st.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::111111111111:role/admin"), RoleSessionName: aws.String("s1"), DurationSeconds: aws.Int32(900)})
	if err != nil {
		t.Fatal(err)
	}
	ar := e.rec.last(t, "AssumeRole")
	compareReal(t, ar)
	if strings.Contains(string(ar.ResponseElements), *out.Credentials.SecretAccessKey) {
		t.Error("secret access key in responseElements")
	}
	cfg := e.cfg
	cfg.Credentials = credentials.NewStaticCredentialsProvider(*out.Credentials.AccessKeyId, *out.Credentials.SecretAccessKey, *out.Credentials.SessionToken)
	cli := s3.NewFromConfig(cfg, func(o *s3.Options) { o.BaseEndpoint = aws.String(e.url); o.UsePathStyle = true })
	_, _ = cli.ListBuckets(ctx, &s3.ListBucketsInput{})
	ev := e.rec.last(t, "ListBuckets")
	ui := ev.UserIdentity
	if ui.Type != "AssumedRole" || ui.AccessKeyID != *out.Credentials.AccessKeyId || ui.SessionContext == nil ||
		ui.SessionContext.SessionIssuer == nil || ui.SessionContext.SessionIssuer.ARN != "arn:aws:iam::111111111111:role/admin" ||
		!strings.HasSuffix(ui.ARN, ":assumed-role/admin/s1") {
		b, _ := json.Marshal(ui)
		t.Errorf("identity after AssumeRole: %s", b)
	}
	// The session expires with the credentials (DurationSeconds 900).
	if s, ok := e.gw.sessions.get(*out.Credentials.AccessKeyId); !ok || !s.expires.Equal(*out.Credentials.Expiration) {
		t.Errorf("session expiry = %+v, %v; want the credentials' %v", s, ok, out.Credentials.Expiration)
	}
	// A restart keeps the identity (sessions file in the data dir).
	e.start(t)
	cli = s3.NewFromConfig(cfg, func(o *s3.Options) { o.BaseEndpoint = aws.String(e.url); o.UsePathStyle = true })
	_, _ = cli.ListBuckets(ctx, &s3.ListBucketsInput{})
	if ui := e.rec.last(t, "ListBuckets").UserIdentity; ui.Type != "AssumedRole" || !strings.HasSuffix(ui.ARN, ":assumed-role/admin/s1") {
		b, _ := json.Marshal(ui)
		t.Errorf("identity after a restart: %s", b)
	}
	// A key nobody knows.
	cfg.Credentials = credentials.NewStaticCredentialsProvider("AKIAUNKNOWN000000000", "x", "")
	cli = s3.NewFromConfig(cfg, func(o *s3.Options) { o.BaseEndpoint = aws.String(e.url); o.UsePathStyle = true })
	mark := e.rec.mark()
	_, _ = cli.ListBuckets(ctx, &s3.ListBucketsInput{})
	if ui := e.rec.lastSince(t, "ListBuckets", mark).UserIdentity; ui.Type != "Unknown" || ui.AccessKeyID != "AKIAUNKNOWN000000000" {
		t.Errorf("unknown identity: %+v", ui)
	}
}

func TestUnmatchedAndUnsigned(t *testing.T) {
	e := newEnv(t)
	resp, err := http.Get(e.url + "/moto-api/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ev := e.rec.last(t, "GET")
	if !strings.Contains(string(ev.AdditionalEventData), "cairnUnmatchedOperation") || ev.UserIdentity.Type != "Unknown" {
		t.Errorf("unsigned request record: %+v", ev)
	}
}

func TestUpstreamDown(t *testing.T) {
	dead, _ := url.Parse("http://127.0.0.1:1")
	rec := &collector{}
	gw, err := New(Config{Upstreams: map[string]*url.URL{"default": dead}, Recorder: rec, DefaultAccount: "111111111111"})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/b?acl", nil)
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAX/20250101/eu-west-1/s3/aws4_request, SignedHeaders=host, Signature=x")
	gw.ServeHTTP(w, r)
	if w.Code != http.StatusBadGateway || len(rec.recs) != 1 {
		t.Fatalf("status %d, %d records", w.Code, len(rec.recs))
	}
	var ev audit.Event
	_ = json.Unmarshal(rec.recs[0].Raw, &ev)
	if ev.EventName != "GetBucketAcl" || ev.ErrorCode != "ServiceUnavailable" || ev.AWSRegion != "eu-west-1" {
		t.Errorf("record %+v", ev)
	}
}
