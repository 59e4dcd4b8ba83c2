package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/config"
	"github.com/cairn-audit/cairn/internal/insights"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// burstLog is a CloudTrail log file of 4 hours of 5 CreateBucket calls a
// minute with 12 minutes of 60 a minute from 03:00, as an incident's logs.
func burstLog(t *testing.T) []byte {
	t0 := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	var recs []json.RawMessage
	for m := 0; m < 240; m++ {
		n := 5
		if m >= 180 && m < 192 {
			n = 60
		}
		for i := 0; i < n; i++ {
			ro, mgmt := false, true
			at := t0.Add(time.Duration(m)*time.Minute + time.Duration(i)*time.Second)
			e := audit.Event{EventVersion: "1.08", UserIdentity: &audit.UserIdentity{Type: "IAMUser", ARN: "arn:aws:iam::111111111111:user/alice",
				AccountID: "111111111111", UserName: "alice"}, EventTime: audit.FormatTime(at), EventSource: "s3.amazonaws.com",
				EventName: "CreateBucket", AWSRegion: "us-east-1", UserAgent: "aws-cli/2", EventID: fmt.Sprintf("e-%d-%d", m, i),
				ReadOnly: &ro, EventType: "AwsApiCall", ManagementEvent: &mgmt, RecipientAccountID: "111111111111", EventCategory: "Management"}
			raw, err := e.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, raw)
		}
	}
	b, _ := json.Marshal(map[string]any{"Records": recs})
	return b
}

// TestInsightsCommand imports an incident's logs, runs cairn insights on
// them twice, and finds the Insights through LookupEvents with the SDK.
func TestInsightsCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := fmt.Sprintf(twoAccounts, 0) + "insights:\n  warm_up: 1h\n"
	cfgPath := filepath.Join(dir, "cairn.yaml")
	writeFile(t, cfgPath, cfg)
	logPath := filepath.Join(dir, "incident.json")
	writeFile(t, logPath, string(burstLog(t)))
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"import", "--data-dir", dir, "--config", cfgPath, "--no-progress", logPath}, &stdout, &stderr); code != 0 {
		t.Fatalf("import exited %d: %s", code, stderr.String())
	}
	ins := func(args ...string) (int, string, string) {
		stdout.Reset()
		stderr.Reset()
		code := run(context.Background(), append([]string{"insights", "--data-dir", dir, "--config", cfgPath, "--no-progress"}, args...), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	code, out, errOut := ins("--output", "json", "--account", "111111111111")
	if code != 0 {
		t.Fatalf("insights exited %d: %s", code, errOut)
	}
	var rep struct {
		Insights []struct {
			InsightType, EventName, StartTime, EndTime, Direction string
			InsightAverage                                        float64
		}
		Stored, AlreadyStored int
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(rep.Insights) != 1 || rep.Stored != 2 || rep.Insights[0].StartTime != "2026-03-02T03:00:00Z" ||
		rep.Insights[0].EndTime != "2026-03-02T03:12:00Z" || rep.Insights[0].Direction != "increase" || rep.Insights[0].InsightType != "ApiCallRateInsight" {
		t.Fatalf("report %s", out)
	}
	code, out, _ = ins("--start", "2026-03-02T03:30:00Z")
	if code != 0 || !strings.Contains(out, "0 Insights") {
		t.Errorf("after the burst: %d %s", code, out)
	}
	code, out, _ = ins()
	if code != 0 || !strings.Contains(out, "ApiCallRateInsight") || !strings.Contains(out, "0 records stored, 2 already stored") {
		t.Errorf("second run: %d %s", code, out)
	}
	for _, bad := range [][]string{{"--start", "yesterday"}, {"--output", "yaml"}, {"--start", "2026-03-02", "--end", "2026-03-01"}, {"extra"}} {
		if code, _, errOut := ins(bad...); code != 2 {
			t.Errorf("%v: exit %d (%s), want 2", bad, code, errOut)
		}
	}

	ts := startServer(t, cfg, dir)
	evs := lookupAll(t, alice(ts), &cloudtrail.LookupEventsInput{EventCategory: types.EventCategoryInsight,
		StartTime: aws.Time(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))})
	if len(evs) != 2 {
		t.Fatalf("LookupEvents --event-category insight: %d events", len(evs))
	}
	for _, e := range evs {
		if aws.ToString(e.EventName) != "CreateBucket" || aws.ToString(e.EventSource) != "s3.amazonaws.com" ||
			!strings.Contains(aws.ToString(e.CloudTrailEvent), `"eventType":"AwsCloudTrailInsight"`) {
			t.Errorf("event %+v", e)
		}
	}
	// The same through the server (its data dir is held now, so the
	// data dir leads to it): the detector runs inside it.
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAALICE00000000001")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "alice-secret-key")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_REGION", "us-east-1")
	if code, out, errOut := ins(); code != 0 || !strings.Contains(errOut, "running the detector in it") ||
		!strings.Contains(out, "ApiCallRateInsight") || !strings.Contains(out, "0 records stored, 2 already stored") {
		t.Errorf("on a held data dir: %d %s %s", code, out, errOut)
	}
	stdout.Reset()
	stderr.Reset()
	code = run(context.Background(), []string{"insights", "--endpoint-url", ts.endpoint, "--region", "us-east-1", "--config", cfgPath,
		"--no-progress", "--output", "json", "--start", "2026-03-02T02:00:00Z"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("insights --endpoint-url exited %d: %s", code, stderr.String())
	}
	rep.Insights, rep.Stored, rep.AlreadyStored = nil, 0, 0
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Insights) != 1 || rep.Insights[0].EndTime != "2026-03-02T03:12:00Z" || rep.Stored != 0 || rep.AlreadyStored != 2 {
		t.Errorf("through the server: %s", stdout.String())
	}
	if n := len(lookupAll(t, alice(ts), &cloudtrail.LookupEventsInput{StartTime: aws.Time(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)),
		LookupAttributes: attr(types.LookupAttributeKeyEventName, "CreateBucket")})); n != 5*228+60*12 {
		t.Errorf("management lookup found %d CreateBucket calls", n)
	}
}

// TestInsightDefaultsAgree keeps the config's defaults and the detector's
// the same.
func TestInsightDefaultsAgree(t *testing.T) {
	got, want := insightParams(config.DefaultInsights()), insights.DefaultParams()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("config defaults %+v\ndetector defaults %+v", got, want)
	}
}

// TestServeFindsInsightsLive runs the server's live runner with a trail
// that enabled ApiErrorRateInsight: a burst of failing calls (TrailNotFound)
// becomes an Insight that LookupEvents returns and the trail delivers under
// CloudTrail-Insight. It waits for a minute to begin and for the burst's
// minute to end (up to two minutes), so -short skips it.
func TestServeFindsInsightsLive(t *testing.T) {
	if testing.Short() {
		t.Skip("waits up to a minute for the burst's minute to end")
	}
	cfg := fmt.Sprintf(twoAccounts, 90) + "insights:\n  lateness: 0s\n  warm_up: 0s\n  min_count: 5\n  start_minutes: 1\n  end_minutes: 1\n"
	ts := startServer(t, cfg, "")
	c := alice(ts)
	ctx := context.Background()
	if _, err := c.CreateTrail(ctx, &cloudtrail.CreateTrailInput{Name: aws.String("insights-trail"), S3BucketName: aws.String(defaultBucket)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartLogging(ctx, &cloudtrail.StartLoggingInput{Name: aws.String("insights-trail")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutInsightSelectors(ctx, &cloudtrail.PutInsightSelectorsInput{TrailName: aws.String("insights-trail"),
		InsightSelectors: []types.InsightSelector{{InsightType: types.InsightTypeApiErrorRateInsight}}}); err != nil {
		t.Fatal(err)
	}
	// Start right after the next minute boundary: the burst fits in one
	// minute, and the Insight (its eventTime is that minute) is not from
	// before the trail started logging.
	time.Sleep(time.Until(time.Now().Truncate(time.Minute).Add(time.Minute + 200*time.Millisecond)))
	for i := 0; i < 20; i++ {
		if _, err := c.GetTrail(ctx, &cloudtrail.GetTrailInput{Name: aws.String("no-such-trail")}); errCode(err) != "TrailNotFoundException" {
			t.Fatalf("GetTrail: %v", err)
		}
	}
	if err := testwait.Wait(t, func() error {
		out, err := c.LookupEvents(ctx, &cloudtrail.LookupEventsInput{EventCategory: types.EventCategoryInsight})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range out.Events {
			ev := aws.ToString(e.CloudTrailEvent)
			if aws.ToString(e.EventName) == "GetTrail" && strings.Contains(ev, `"insightType":"ApiErrorRateInsight"`) &&
				strings.Contains(ev, `"errorCode":"TrailNotFoundException"`) && strings.Contains(ev, `"state":"Start"`) {
				ts.stop() // the final delivery writes the trail's files
				for key, body := range localFiles(t, filepath.Join(ts.dataDir, "buckets", defaultBucket)) {
					if strings.Contains(key, "/CloudTrail-Insight/") {
						zr, err := gzip.NewReader(bytes.NewReader(body))
						if err != nil {
							t.Fatalf("%s: %v", key, err)
						}
						var f struct{ Records []json.RawMessage }
						if err := json.NewDecoder(zr).Decode(&f); err != nil {
							t.Fatalf("%s: %v", key, err)
						}
						for _, r := range f.Records {
							if strings.Contains(string(r), `"eventID":"`+aws.ToString(e.EventId)+`"`) {
								return nil
							}
						}
					}
				}
				t.Fatal("the trail delivered no CloudTrail-Insight file with the Insight")
			}
		}
		return errors.New("not yet")
	}); err != nil {
		t.Fatal(testwait.Failure("an ApiErrorRateInsight for the burst of failing GetTrail calls", err))
	}
}

// committer is a store that tells its commits (OnCommitted), as the DuckDB
// store does.
type committer struct{ f func(int64, []*audit.Record) }

func (c *committer) OnCommitted(f func(first int64, recs []*audit.Record)) { c.f = f }

// The live Insights runner is woken by a bulk import's commits, not by each
// of a server's own calls: a signal waits once wakeRecords records have
// been committed since the last, and never more than one.
func TestCommitSignal(t *testing.T) {
	if commitSignal(struct{}{}, nil) != nil {
		t.Fatal("a store that does not tell its commits has a signal")
	}
	var st committer
	wake := commitSignal(&st, nil)
	signalled := func() bool {
		select {
		case <-wake:
			return true
		default:
			return false
		}
	}
	one := []*audit.Record{{}}
	for i := 0; i < wakeRecords-1; i++ {
		st.f(int64(i), one)
	}
	if signalled() {
		t.Fatalf("woken after %d single-record commits", wakeRecords-1)
	}
	st.f(wakeRecords, one)
	if !signalled() {
		t.Fatalf("not woken after %d records", wakeRecords)
	}
	bulk := make([]*audit.Record, 3*wakeRecords)
	st.f(0, bulk)
	st.f(0, bulk)
	if !signalled() || signalled() {
		t.Fatal("two bulk commits: want exactly one signal waiting")
	}
}
