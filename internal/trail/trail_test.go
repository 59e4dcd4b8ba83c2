package trail

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
	localbucket "github.com/cairn-audit/cairn/internal/bucket/local"
	"github.com/cairn-audit/cairn/internal/lease"
	"github.com/cairn-audit/cairn/internal/testwait"
)

var n int

// rec builds a record of account and region; extra holds more JSON members.
func rec(t testing.TB, account, region, source, name string, readOnly bool, extra string) audit.Record {
	t.Helper()
	n++
	raw := fmt.Sprintf(`{"eventVersion":"1.11","userIdentity":{"type":"IAMUser","accountId":%q},"eventTime":"2026-11-25T08:00:00Z","eventSource":%q,"eventName":%q,"awsRegion":%q,"sourceIPAddress":"1.2.3.4","userAgent":"x","eventID":"e%d","readOnly":%v,"eventType":"AwsApiCall","recipientAccountId":%q%s}`,
		account, source, name, region, n, readOnly, account, extra)
	r, err := audit.Extract([]byte(raw))
	if err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return r
}

const s3Data = `,"eventCategory":"Data","managementEvent":false,"resources":[{"type":"AWS::S3::Object","ARN":"arn:aws:s3:::bkt/logs/a.txt"},{"type":"AWS::S3::Bucket","ARN":"arn:aws:s3:::bkt"}]`

func str(s string) *string { return &s }
func bl(b bool) *bool      { return &b }

func TestSelects(t *testing.T) {
	const acct, other = "111111111111", "222222222222"
	mgmtRead := rec(t, acct, "us-east-1", "ec2.amazonaws.com", "DescribeInstances", true, "")
	mgmtWrite := rec(t, acct, "us-east-1", "ec2.amazonaws.com", "RunInstances", false, "")
	kms := rec(t, acct, "us-east-1", "kms.amazonaws.com", "Decrypt", true, "")
	iam := rec(t, acct, "us-east-1", "iam.amazonaws.com", "CreateUser", false, "")
	west := rec(t, acct, "us-west-2", "ec2.amazonaws.com", "RunInstances", false, "")
	foreign := rec(t, other, "us-east-1", "ec2.amazonaws.com", "RunInstances", false, "")
	data := rec(t, acct, "us-east-1", "s3.amazonaws.com", "GetObject", true, s3Data)
	insight := rec(t, acct, "us-east-1", "ec2.amazonaws.com", "RunInstances", false, `,"eventType":"AwsCloudTrailInsight","eventCategory":"Insight","insightDetails":{"state":"Start","eventSource":"ec2.amazonaws.com","eventName":"RunInstances","insightType":"ApiCallRateInsight"}`)
	if insight.Category != audit.CategoryInsight || data.Category != audit.CategoryData {
		t.Fatalf("categories: %v %v", insight.Category, data.Category)
	}
	all := []audit.Record{mgmtRead, mgmtWrite, kms, iam, west, foreign, data, insight}
	base := Trail{Name: "t", Account: acct, HomeRegion: "us-east-1", IncludeGlobalServiceEvents: true}
	with := func(f func(t *Trail)) Trail { c := base; f(&c); return c }
	org := &audit.Organization{ID: "o-abcdefghij", ManagementAccount: acct, Members: []string{other}}
	cases := []struct {
		name  string
		trail Trail
		want  []bool // per record of all
	}{
		{"default", base, []bool{true, true, true, true, false, false, false, false}},
		{"multi-region", with(func(t *Trail) { t.IsMultiRegionTrail = true }), []bool{true, true, true, true, true, false, false, false}},
		{"no global", with(func(t *Trail) { t.IncludeGlobalServiceEvents = false }), []bool{true, true, true, false, false, false, false, false}},
		{"organization", with(func(t *Trail) { t.IsOrganizationTrail, t.OrganizationID, t.org = true, org.ID, org }), []bool{true, true, true, true, false, true, false, false}},
		{"write only", with(func(t *Trail) { t.EventSelectors = []EventSelector{{ReadWriteType: str("WriteOnly")}} }), []bool{false, true, false, true, false, false, false, false}},
		{"read only, no kms", with(func(t *Trail) {
			t.EventSelectors = []EventSelector{{ReadWriteType: str("ReadOnly"), ExcludeManagementEventSources: []string{"kms.amazonaws.com"}}}
		}), []bool{true, false, false, false, false, false, false, false}},
		{"s3 data only", with(func(t *Trail) {
			t.EventSelectors = []EventSelector{{IncludeManagementEvents: bl(false), DataResources: []DataResource{{Type: str("AWS::S3::Object"), Values: []string{"arn:aws:s3:::bkt/logs/"}}}}}
		}), []bool{false, false, false, false, false, false, true, false}},
		{"s3 data other prefix", with(func(t *Trail) {
			t.EventSelectors = []EventSelector{{IncludeManagementEvents: bl(false), DataResources: []DataResource{{Type: str("AWS::S3::Object"), Values: []string{"arn:aws:s3:::bkt/other/"}}}}}
		}), []bool{false, false, false, false, false, false, false, false}},
		{"advanced: data on S3 objects by ARN", with(func(t *Trail) {
			t.AdvancedEventSelectors = []audit.AdvancedSelector{{FieldSelectors: []audit.FieldSelector{
				{Field: "eventCategory", Equals: []string{"Data"}},
				{Field: "resources.type", Equals: []string{"AWS::S3::Object"}},
				{Field: "resources.ARN", StartsWith: []string{"arn:aws:s3:::bkt/"}, NotEndsWith: []string{".log"}},
			}}}
		}), []bool{false, false, false, false, false, false, true, false}},
		{"advanced: management writes except iam", with(func(t *Trail) {
			t.AdvancedEventSelectors = []audit.AdvancedSelector{{FieldSelectors: []audit.FieldSelector{
				{Field: "eventCategory", Equals: []string{"Management"}},
				{Field: "readOnly", Equals: []string{"false"}},
				{Field: "eventSource", NotEquals: []string{"iam.amazonaws.com"}},
			}}}
		}), []bool{false, true, false, false, false, false, false, false}},
		{"insights on", with(func(t *Trail) { t.InsightSelectors = []InsightSelector{{InsightType: ApiCallRateInsight}} }), []bool{true, true, true, true, false, false, false, true}},
		{"other insight type", with(func(t *Trail) { t.InsightSelectors = []InsightSelector{{InsightType: ApiErrorRateInsight}} }), []bool{true, true, true, true, false, false, false, false}},
	}
	for _, c := range cases {
		for i := range all {
			if got := c.trail.Selects(&all[i]); got != c.want[i] {
				t.Errorf("%s: Selects(%s %s %s %s) = %v", c.name, all[i].Account, all[i].Region, all[i].EventName, all[i].Category, got)
			}
		}
	}
}

func TestValidateSelectors(t *testing.T) {
	bad := [][]EventSelector{
		{{ReadWriteType: str("Sometimes")}},
		{{DataResources: []DataResource{{Type: str("AWS::EC2::Instance"), Values: []string{"x"}}}}},
		{{DataResources: []DataResource{{Type: str("AWS::S3::Object"), Values: []string{"arn:aws:lambda:x"}}}}},
		{{ExcludeManagementEventSources: []string{"ec2.amazonaws.com"}}},
		{{}, {}, {}, {}, {}, {}},
	}
	for _, b := range bad {
		if err := validateBasic(b); audit.ErrorCode(err) != "InvalidEventSelectors" {
			t.Errorf("validateBasic(%+v) = %v", b, err)
		}
	}
	// A long value quoted in the message is clipped on a character
	// boundary: € is bytes 127-129.
	long := strings.Repeat("a", 127) + "€" + strings.Repeat("b", 10)
	err := validateBasic([]EventSelector{{ReadWriteType: &long}})
	if msg := fmt.Sprint(err); !utf8.ValidString(msg) || !strings.Contains(msg, strings.Repeat("a", 127)+"...") {
		t.Errorf("message quoting a long value: %q", msg)
	}
}

// TestPutAdvancedSelectors: PutEventSelectors validates advanced selectors
// as audit.ValidateSelectors does for a trail (the same answers as AWS
// and as Lake's event data stores, with a trail's categories), and a
// refused call leaves the trail's selectors as they were.
func TestPutAdvancedSelectors(t *testing.T) {
	local, err := localbucket.New("logs", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	svc := &Service{Registry: &Registry{trails: map[string]*Trail{}}, Bucket: func(string) (Bucket, bool) { return local, true }, MaxPerRegion: 5}
	caller := audit.Principal{AccountID: "111111111111", Region: "us-east-1"}
	if _, err := svc.Create(context.Background(), caller, Settings{Name: str("main"), S3BucketName: str("logs")}); err != nil {
		t.Fatal(err)
	}
	cat := func(c ...string) audit.FieldSelector { return audit.FieldSelector{Field: "eventCategory", Equals: c} }
	one := func(f ...audit.FieldSelector) []audit.AdvancedSelector {
		return []audit.AdvancedSelector{{FieldSelectors: f}}
	}
	refused := map[string][]audit.AdvancedSelector{
		"no field selectors":         {{FieldSelectors: nil}},
		"no eventCategory":           one(audit.FieldSelector{Field: "eventName", Equals: []string{"x"}}),
		"no value":                   one(audit.FieldSelector{Field: "eventCategory"}),
		"empty value":                one(cat("")),
		"unknown field":              one(cat("Data"), audit.FieldSelector{Field: "userName", Equals: []string{"x"}}),
		"field with a space":         one(audit.FieldSelector{Field: "event Category", Equals: []string{"Data"}}),
		"StartsWith on readOnly":     one(cat("Management"), audit.FieldSelector{Field: "readOnly", StartsWith: []string{"t"}}),
		"NotEquals on category":      one(audit.FieldSelector{Field: "eventCategory", NotEquals: []string{"Data"}}),
		"EndsWith on resources.type": one(cat("Data"), audit.FieldSelector{Field: "resources.type", EndsWith: []string{"Object"}}),
		"readOnly yes":               one(cat("Management"), audit.FieldSelector{Field: "readOnly", Equals: []string{"yes"}}),
		"unknown category":           one(cat("Everything")),
		"a store's category":         one(cat("Insight")),
	}
	for name, sels := range refused {
		if _, err := svc.PutEventSelectors(caller, "main", nil, sels); audit.ErrorCode(err) != "InvalidEventSelectors" {
			t.Errorf("%s: PutEventSelectors = %v; want InvalidEventSelectors", name, err)
		}
	}
	if tr, err := svc.EventSelectors(caller, "main"); err != nil || tr.CustomSelectors || len(tr.AdvancedEventSelectors) != 0 {
		t.Errorf("refused calls changed the selectors: %+v, %v", tr, err)
	}
	accepted := map[string][]audit.AdvancedSelector{
		"userIdentity.arn":             one(cat("Management"), audit.FieldSelector{Field: "userIdentity.arn", StartsWith: []string{"arn:aws:iam::111111111111:user/"}}),
		"eventType":                    one(cat("Management"), audit.FieldSelector{Field: "eventType", Equals: []string{"AwsApiCall"}}),
		"errorCode":                    one(cat("Management"), audit.FieldSelector{Field: "errorCode", NotEquals: []string{"AccessDenied"}}),
		"sessionCredentialFromConsole": one(cat("Management"), audit.FieldSelector{Field: "sessionCredentialFromConsole", Equals: []string{"true"}}),
		"vpcEndpointId":                one(cat("NetworkActivity"), audit.FieldSelector{Field: "vpcEndpointId", Equals: []string{"vpce-1"}}),
		"two categories":               one(cat("Management", "Data")),
	}
	for name, sels := range accepted {
		tr, err := svc.PutEventSelectors(caller, "main", nil, sels)
		if err != nil || len(tr.AdvancedEventSelectors) != 1 || tr.AdvancedEventSelectors[0].FieldSelectors[len(sels[0].FieldSelectors)-1].Field != sels[0].FieldSelectors[len(sels[0].FieldSelectors)-1].Field {
			t.Errorf("%s: PutEventSelectors = %+v, %v; want accepted", name, tr.AdvancedEventSelectors, err)
		}
	}
}

// flaky is a local bucket that refuses writes while down is set.
type flaky struct {
	Bucket
	mu   sync.Mutex
	down bool
}

func (f *flaky) Put(ctx context.Context, key string, body []byte, ct string, meta map[string]string) error {
	f.mu.Lock()
	down := f.down
	f.mu.Unlock()
	if down {
		return errors.New("AccessDenied: bucket refuses writes")
	}
	return f.Bucket.Put(ctx, key, body, ct, meta)
}

type seen struct {
	mu   sync.Mutex
	keys []string
}

func (s *seen) LogDelivered(_ context.Context, _ Trail, _, _, key, hash string, _, _ time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(hash) != 64 {
		panic("hash is not a hex SHA-256")
	}
	s.keys = append(s.keys, key)
}

// delivered reads every record of the log files in b.
func delivered(t *testing.T, b Bucket, prefix string) (keys []string, names []string) {
	t.Helper()
	ctx := context.Background()
	keys, err := b.List(ctx, prefix, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		gz, _, err := b.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(zr)
		var f struct {
			Records []struct{ EventName string }
		}
		if err := json.Unmarshal(body, &f); err != nil {
			t.Fatal(err)
		}
		for _, r := range f.Records {
			names = append(names, r.EventName)
		}
	}
	return keys, names
}

func TestDeliveryRetriesAndLosesNothing(t *testing.T) {
	ctx := context.Background()
	const acct, member = "111111111111", "222222222222"
	dir := t.TempDir()
	reg, err := OpenRegistry(dir)
	if err != nil {
		t.Fatal(err)
	}
	org := &audit.Organization{ID: "o-abcdefghij", ManagementAccount: acct, Members: []string{member}}
	reg.SetOrganization(org)
	local, err := localbucket.New("logs", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := &flaky{Bucket: local}
	store := audittest.NewMemStore()
	store.Append(ctx, []audit.Record{rec(t, acct, "us-east-1", "ec2.amazonaws.com", "BeforeLogging", false, "")})
	head, _ := store.LastSeq(ctx)
	start := time.Date(2026, 11, 25, 7, 0, 0, 0, time.UTC)
	err = reg.update(func(trails map[string]*Trail) error {
		tr := &Trail{Name: "org", Account: acct, HomeRegion: "us-east-1", S3BucketName: "logs", S3KeyPrefix: "p",
			IncludeGlobalServiceEvents: true, IsOrganizationTrail: true, OrganizationID: org.ID, org: org,
			Logging: true, StartLoggingTime: start, Position: head}
		trails[tr.ARN()] = tr
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 25, 8, 5, 0, 0, time.UTC)
	obs := &seen{}
	d := NewDeliverer(DeliveryConfig{Registry: reg, Feed: store, Bucket: func(name string) (Bucket, bool) { return b, name == "logs" },
		Interval: time.Second, Now: func() time.Time { return now }, Observer: obs})
	store.Append(ctx, []audit.Record{
		rec(t, acct, "us-east-1", "ec2.amazonaws.com", "RunInstances", false, ""),
		rec(t, member, "us-east-1", "ec2.amazonaws.com", "StopInstances", false, ""),
		rec(t, "333333333333", "us-east-1", "ec2.amazonaws.com", "Outsider", false, ""),
	})
	b.down = true
	d.DeliverOnce(ctx)
	arn := "arn:aws:cloudtrail:us-east-1:" + acct + ":trail/org"
	tr, _ := reg.get(arn)
	if tr.LatestDeliveryError == "" || tr.Position != head {
		t.Fatalf("after a refused write: error %q, position %d (want unchanged %d)", tr.LatestDeliveryError, tr.Position, head)
	}
	// Backing off: a second round right away does not try.
	b.down = false
	d.DeliverOnce(ctx)
	if keys, _ := delivered(t, local, ""); len(keys) != 0 {
		t.Fatalf("delivered during backoff: %v", keys)
	}
	now = now.Add(2 * time.Second)
	d.DeliverOnce(ctx)
	keys, names := delivered(t, local, "")
	if strings.Join(names, ",") != "RunInstances,StopInstances" && strings.Join(names, ",") != "StopInstances,RunInstances" {
		t.Errorf("delivered %v", names)
	}
	keyRE := regexp.MustCompile(`^p/AWSLogs/o-abcdefghij/(111111111111|222222222222)/CloudTrail/us-east-1/2026/11/25/(111111111111|222222222222)_CloudTrail_us-east-1_20261125T0805Z_[A-Za-z0-9]{16}\.json\.gz$`)
	for _, k := range keys {
		if m := keyRE.FindStringSubmatch(k); m == nil || m[1] != m[2] {
			t.Errorf("key %s is not the organization layout", k)
		}
	}
	if len(keys) != 2 || len(obs.keys) != 2 {
		t.Errorf("one file per account: %v; observer saw %v", keys, obs.keys)
	}
	tr, _ = reg.get(arn)
	if tr.LatestDeliveryError != "" || !tr.LatestDeliveryTime.Equal(now) {
		t.Errorf("status after success: %+v", tr)
	}
	// The position is durable: a reopened registry delivers nothing twice.
	reg2, err := OpenRegistry(dir)
	if err != nil {
		t.Fatal(err)
	}
	reg2.SetOrganization(org)
	d2 := NewDeliverer(DeliveryConfig{Registry: reg2, Feed: store, Bucket: d.cfg.Bucket, Interval: time.Second, Now: d.cfg.Now})
	d2.DeliverOnce(ctx)
	if keys2, _ := delivered(t, local, ""); len(keys2) != 2 {
		t.Errorf("redelivered after reopening: %v", keys2)
	}
	// Insights go to their own folder; the digest hook is for log files only.
	reg2.update(func(trails map[string]*Trail) error {
		trails[arn].InsightSelectors = []InsightSelector{{InsightType: ApiCallRateInsight}}
		return nil
	})
	if got := reg2.InsightsEnabled(member, "us-east-1"); len(got) != 1 || got[0] != ApiCallRateInsight {
		t.Errorf("InsightsEnabled(member) = %v", got)
	}
	if got := reg2.InsightsEnabled("333333333333", "us-east-1"); len(got) != 0 {
		t.Errorf("InsightsEnabled(outsider) = %v", got)
	}
	store.Append(ctx, []audit.Record{rec(t, acct, "us-east-1", "ec2.amazonaws.com", "RunInstances", false,
		`,"eventType":"AwsCloudTrailInsight","eventCategory":"Insight","insightDetails":{"state":"Start","eventSource":"ec2.amazonaws.com","eventName":"RunInstances","insightType":"ApiCallRateInsight"}`)})
	d2.DeliverOnce(ctx)
	if keys, _ := delivered(t, local, "p/AWSLogs/o-abcdefghij/111111111111/CloudTrail-Insight/us-east-1/"); len(keys) != 1 ||
		!strings.Contains(keys[0], "/111111111111_CloudTrail-Insight_us-east-1_20261125T0805Z_") {
		t.Errorf("insight files: %v", keys)
	}
	if err := reg2.setDigestStatus(ctx, arn, now, ""); err != nil {
		t.Fatal(err)
	}
	if tr, _ := reg2.get(arn); !tr.LatestDigestDeliveryTime.Equal(now) {
		t.Errorf("digest time not kept: %+v", tr)
	}
}

// at returns r with its time set.
func at(r audit.Record, t time.Time) audit.Record { r.Time = t; return r }

func TestStoppedTrailDeliversUpToTheStop(t *testing.T) {
	ctx := context.Background()
	const acct = "111111111111"
	reg, err := OpenRegistry(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	local, _ := localbucket.New("logs", t.TempDir())
	store := audittest.NewMemStore()
	start := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	stop := start.Add(10 * time.Minute)
	arn := "arn:aws:cloudtrail:us-east-1:" + acct + ":trail/main"
	reg.update(func(trails map[string]*Trail) error {
		trails[arn] = &Trail{Name: "main", Account: acct, HomeRegion: "us-east-1", S3BucketName: "logs",
			IncludeGlobalServiceEvents: true, Logging: false, Draining: true, StartLoggingTime: start, DeliverFrom: start, StopLoggingTime: stop}
		return nil
	})
	now := stop.Add(5 * time.Second)
	d := NewDeliverer(DeliveryConfig{Registry: reg, Feed: store, Bucket: func(string) (Bucket, bool) { return local, true },
		Interval: time.Second, Now: func() time.Time { return now }})
	// Stored after the stop: a call from while logging, the StopLogging
	// call itself (same second), and a call after the stop.
	store.Append(ctx, []audit.Record{
		at(rec(t, acct, "us-east-1", "ec2.amazonaws.com", "WhileLogging", false, ""), stop.Add(-time.Minute)),
		at(rec(t, acct, "us-east-1", "cloudtrail.amazonaws.com", "StopLogging", false, ""), stop.Truncate(time.Second)),
		at(rec(t, acct, "us-east-1", "ec2.amazonaws.com", "AfterStop", false, ""), stop.Add(2*time.Second)),
	})
	d.DeliverOnce(ctx)
	if _, names := delivered(t, local, ""); strings.Join(names, ",") != "WhileLogging,StopLogging" {
		t.Errorf("a stopping trail delivered %v", names)
	}
	if tr, _ := reg.get(arn); !tr.Draining {
		t.Errorf("draining ended within the window")
	}
	now = stop.Add(2 * drainWindow)
	store.Append(ctx, []audit.Record{at(rec(t, acct, "us-east-1", "ec2.amazonaws.com", "Later", false, ""), now)})
	d.DeliverOnce(ctx)
	if tr, _ := reg.get(arn); tr.Draining || tr.Position != 4 {
		t.Errorf("after the window: draining %v, position %d", tr.Draining, tr.Position)
	}
	if _, names := delivered(t, local, ""); len(names) != 2 {
		t.Errorf("delivered after the stop: %v", names)
	}
}

// stalling is a bucket whose first write waits for its context to end
// (a slow S3 when shutdown begins).
type stalling struct {
	Bucket
	started chan struct{}
	once    sync.Once
}

func (s *stalling) Put(ctx context.Context, key string, body []byte, ct string, meta map[string]string) error {
	first := false
	s.once.Do(func() { first = true; close(s.started) })
	if first {
		<-ctx.Done()
		return ctx.Err()
	}
	return s.Bucket.Put(ctx, key, body, ct, meta)
}

// A round that shutdown interrupts is no delivery failure: the final
// round at shutdown delivers the batch (it used to be skipped, the trail
// backing off after the cancelled write) and LatestDeliveryError stays
// empty. A round interrupted because the node lost its delivery lease
// (lease.ErrLost) has no final round: the node now holding the lease
// delivers the batch, and this one writes nothing more.
//
// Records stored after the interrupted round read its batch (the ingest
// drain stores the last calls' records just before delivery stops) are
// delivered by the final round too, after the batch it delivers again: a
// graceful stop leaves nothing behind. Before the fix the final round's
// redo of the interrupted batch took the trail out of the round, and
// those records waited for the next start (TestCrashDuringDeliveryLosesNothing
// found them in the store but not in the bucket after its SIGTERM).
func TestShutdownDuringADeliveryStillFlushes(t *testing.T) {
	t.Run("shutdown", func(t *testing.T) { testInterruptedRound(t, context.Canceled, false, "RunInstances", 1) })
	t.Run("lease lost", func(t *testing.T) { testInterruptedRound(t, lease.ErrLost, false, "", 0) })
	t.Run("shutdown, records stored after the round read", func(t *testing.T) {
		testInterruptedRound(t, context.Canceled, true, "RunInstances,StopInstances,TerminateInstances", 3)
	})
	t.Run("lease lost, records stored after the round read", func(t *testing.T) {
		testInterruptedRound(t, lease.ErrLost, true, "", 0)
	})
}

func testInterruptedRound(t *testing.T, cause error, later bool, wantDelivered string, wantPosition int64) {
	ctx := context.Background()
	const acct = "111111111111"
	reg, err := OpenRegistry(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	local, _ := localbucket.New("logs", t.TempDir())
	b := &stalling{Bucket: local, started: make(chan struct{})}
	store := audittest.NewMemStore()
	arn := "arn:aws:cloudtrail:us-east-1:" + acct + ":trail/main"
	start := time.Now().Add(-time.Minute)
	reg.update(func(trails map[string]*Trail) error {
		trails[arn] = &Trail{Name: "main", Account: acct, HomeRegion: "us-east-1", S3BucketName: "logs",
			IncludeGlobalServiceEvents: true, Logging: true, StartLoggingTime: start}
		return nil
	})
	store.Append(ctx, []audit.Record{at(rec(t, acct, "us-east-1", "ec2.amazonaws.com", "RunInstances", false, ""), time.Now())})
	d := NewDeliverer(DeliveryConfig{Registry: reg, Feed: store, Bucket: func(string) (Bucket, bool) { return b, true }, Interval: 10 * time.Millisecond})
	runCtx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	var runErr error
	go func() { runErr = d.Run(runCtx); close(done) }()
	select {
	case <-b.started:
	case <-testwait.Context(t).Done():
		t.Fatal("no delivery started before the test's deadline")
	}
	if later {
		// The round's write of RunInstances hangs: it read its batch.
		store.Append(ctx, []audit.Record{
			at(rec(t, acct, "us-east-1", "ec2.amazonaws.com", "TerminateInstances", false, ""), time.Now()),
			at(rec(t, acct, "us-east-1", "ec2.amazonaws.com", "StopInstances", false, ""), time.Now()),
		})
	}
	cancel(cause)
	<-done // Run returned: its interrupted write and the final round are over
	if runErr != nil {
		t.Errorf("Run = %v", runErr)
	}
	_, names := delivered(t, local, "")
	slices.Sort(names) // the files' keys end in random characters
	if strings.Join(names, ",") != wantDelivered {
		t.Errorf("delivered after the cancel (%v): %v; want %q", cause, names, wantDelivered)
	}
	if tr, _ := reg.get(arn); tr.LatestDeliveryError != "" || tr.Position != wantPosition {
		t.Errorf("after the cancel (%v): error %q, position %d; want position %d", cause, tr.LatestDeliveryError, tr.Position, wantPosition)
	}
}
