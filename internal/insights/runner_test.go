package insights_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/insights"
	"github.com/cairn-audit/cairn/internal/store/duckdb"
	"github.com/cairn-audit/cairn/internal/testwait"
)

var t0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

const (
	acct = "111111111111"
	reg  = "eu-west-1"
)

// smallParams shorten the warm-up so that a few hours of records suffice.
func smallParams() insights.Params {
	p := insights.DefaultParams()
	p.WarmUp = time.Hour
	return p
}

// call is a stored record of one API call.
func call(t testing.TB, at time.Time, n int, source, name string, readOnly bool, user, agent, errorCode string) audit.Record {
	t.Helper()
	ro := readOnly
	mgmt := true
	e := &audit.Event{
		EventVersion: audit.EventVersion,
		UserIdentity: &audit.UserIdentity{Type: "IAMUser", PrincipalID: "AIDA" + user, ARN: "arn:aws:iam::" + acct + ":user/" + user,
			AccountID: acct, AccessKeyID: "AKIA" + user, UserName: user},
		EventTime: audit.FormatTime(at), EventSource: source, EventName: name, AWSRegion: reg,
		SourceIPAddress: "192.0.2.1", UserAgent: agent, ErrorCode: errorCode,
		RequestID: fmt.Sprintf("req-%d-%d", at.Unix(), n), EventID: fmt.Sprintf("ev-%s-%d-%d", name, at.Unix(), n),
		ReadOnly: &ro, EventType: "AwsApiCall", ManagementEvent: &mgmt, RecipientAccountID: acct, EventCategory: "Management",
	}
	raw, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	r, err := audit.Extract(raw)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// burstHistory is 4 hours of 5 CreateBucket calls a minute by alice, with
// 12 minutes of 60 a minute by mallory from 03:00, and 1 AccessDenied a
// minute with 30 a minute in the same burst; shuffled as an import of files
// in any order would be.
func burstHistory(t testing.TB) []audit.Record {
	var rs []audit.Record
	r := rand.New(rand.NewPCG(5, 5))
	for m := 0; m < 240; m++ {
		at := t0.Add(time.Duration(m) * time.Minute)
		burst := m >= 180 && m < 192
		n := 5
		if burst {
			n = 60
		}
		for i := 0; i < n; i++ {
			user, agent := "alice", "aws-cli/2.15"
			if burst && i >= 5 {
				user, agent = "mallory", "Boto3/1.34"
			}
			rs = append(rs, call(t, at.Add(time.Duration(i%60)*time.Second), i, "s3.amazonaws.com", "CreateBucket", false, user, agent, ""))
		}
		errs := 1
		if burst {
			errs = 30
		}
		for i := 0; i < errs; i++ {
			rs = append(rs, call(t, at.Add(time.Duration(i%60)*time.Second), i, "iam.amazonaws.com", "ListUsers", true, "mallory", "Boto3/1.34", "AccessDenied"))
		}
		rs = append(rs, call(t, at, 0, "ec2.amazonaws.com", "DescribeInstances", true, "alice", "aws-cli/2.15", ""))
	}
	r.Shuffle(len(rs), func(i, j int) { rs[i], rs[j] = rs[j], rs[i] })
	return rs
}

func openStore(t testing.TB) *duckdb.Store {
	t.Helper()
	s, err := duckdb.Open(filepath.Join(t.TempDir(), "events.duckdb"), duckdb.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func appendAll(t testing.TB, s interface {
	Append(context.Context, []audit.Record) (audit.AppendResult, error)
}, rs []audit.Record) {
	t.Helper()
	for i := 0; i < len(rs); i += 1000 {
		if _, err := s.Append(context.Background(), rs[i:min(i+1000, len(rs))]); err != nil {
			t.Fatal(err)
		}
	}
}

func insightRecords(t testing.TB, s insights.Lookuper) []audit.Record {
	t.Helper()
	p, err := s.Lookup(context.Background(), audit.Query{Account: acct, Region: reg, Category: audit.CategoryInsight, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return p.Records
}

// TestRetro stores shuffled history in the DuckDB store, runs Retro, and
// checks the Insights records: AWS's shape, paired, attributed, visible to
// EventCategory=insight lookups, and stored once however often Retro runs.
func TestRetro(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	appendAll(t, s, burstHistory(t))
	res, err := insights.Retro(ctx, s, s, s, insights.RetroOptions{Account: acct, Params: smallParams()})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Insights) != 4 || res.Stored != 4 || res.Late != 0 {
		t.Fatalf("result %+v, want 4 Insights stored (2 types, Start and End)", res)
	}
	recs := insightRecords(t, s)
	if len(recs) != 4 {
		t.Fatalf("lookup found %d Insights records", len(recs))
	}
	shared := map[string][]string{}
	for _, r := range recs {
		var v map[string]any
		if err := json.Unmarshal(r.Raw, &v); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"userIdentity", "eventName", "eventSource", "userAgent", "sourceIPAddress"} {
			if _, ok := v[k]; ok {
				t.Errorf("an Insights record has %s: %s", k, r.Raw)
			}
		}
		if v["eventType"] != "AwsCloudTrailInsight" || v["eventCategory"] != "Insight" || v["recipientAccountId"] != acct || v["awsRegion"] != reg {
			t.Errorf("record %s", r.Raw)
		}
		d := v["insightDetails"].(map[string]any)
		shared[v["sharedEventID"].(string)] = append(shared[v["sharedEventID"].(string)], d["state"].(string))
		stats := d["insightContext"].(map[string]any)["statistics"].(map[string]any)
		if d["insightType"] == insights.CallRate {
			if d["eventName"] != "CreateBucket" || d["eventSource"] != "s3.amazonaws.com" || d["errorCode"] != nil {
				t.Errorf("call-rate details %v", d)
			}
			if b := stats["baseline"].(map[string]any)["average"].(float64); b < 4 || b > 8 {
				t.Errorf("baseline average %v, want about 5", b)
			}
			attrs := d["insightContext"].(map[string]any)["attributions"].([]any)
			first := attrs[0].(map[string]any)
			top := first["insight"].([]any)[0].(map[string]any)
			if first["attribute"] != "userIdentityArn" || top["value"] != "arn:aws:iam::"+acct+":user/mallory" {
				t.Errorf("attributions %v", attrs)
			}
			if b := first["baseline"].([]any)[0].(map[string]any); b["value"] != "arn:aws:iam::"+acct+":user/alice" || b["average"].(float64) != 5 {
				t.Errorf("baseline attribution %v", b)
			}
			if len(attrs) != 3 || attrs[2].(map[string]any)["attribute"] != "errorCode" {
				t.Errorf("attributions %v", attrs)
			}
		} else if d["errorCode"] != "AccessDenied" || d["eventName"] != "ListUsers" {
			t.Errorf("error-rate details %v", d)
		}
		if r.EventName == "" || r.Category != audit.CategoryInsight {
			t.Errorf("indexed as %+v", r)
		}
	}
	for id, states := range shared {
		slices.Sort(states)
		if fmt.Sprint(states) != "[End Start]" {
			t.Errorf("sharedEventID %s pairs %v", id, states)
		}
	}
	again, err := insights.Retro(ctx, s, s, s, insights.RetroOptions{Account: acct, Params: smallParams()})
	if err != nil || again.Stored != 0 || again.Already != 4 {
		t.Fatalf("second run: %+v, %v; want nothing new", again, err)
	}
	// A range that excludes the burst finds nothing; another account neither.
	res, _ = insights.Retro(ctx, s, s, s, insights.RetroOptions{Start: t0.Add(200 * time.Minute), Params: smallParams(), DryRun: true})
	if len(res.Insights) != 0 {
		t.Errorf("after the burst: %+v", res.Insights)
	}
	res, _ = insights.Retro(ctx, s, s, s, insights.RetroOptions{Account: "222222222222", Params: smallParams(), DryRun: true})
	if len(res.Insights) != 0 || res.Analysed != 0 {
		t.Errorf("other account: %+v", res)
	}
}

// TestRunnerLiveMatchesRetro feeds the same history live, in time order and
// batch by batch, and checks the runner stores the same records as Retro.
func TestRunnerLiveMatchesRetro(t *testing.T) {
	live := audittest.NewMemStore()
	feed := &readTo{Feed: live}
	liveMatchesRetro(t, live, feed, func(*insights.RunnerConfig) {}, feed.after.Load)
}

// liveStore is what a live runner reads and writes.
type liveStore interface {
	insights.Sink
	insights.Lookuper
	LastSeq(context.Context) (int64, error)
}

// liveMatchesRetro appends burstHistory to live minute by minute, the
// runner (its config set by with) reading feed, and checks that it stores
// the Insights Retro finds in the same records. read tells up to which
// sequence number the runner has read.
func liveMatchesRetro(t *testing.T, live liveStore, feed insights.Feed, with func(*insights.RunnerConfig), read func() int64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hist := burstHistory(t)
	ordered := slices.Clone(hist)
	slices.SortStableFunc(ordered, func(a, b audit.Record) int { return a.Time.Compare(b.Time) })

	ref := audittest.NewMemStore()
	appendAll(t, ref, hist)
	if _, err := insights.Retro(ctx, ref, ref, ref, insights.RetroOptions{Params: smallParams()}); err != nil {
		t.Fatal(err)
	}
	want := ids(insightRecords(t, ref))

	var now atomic.Int64 // the wall clock follows the records, a minute behind
	now.Store(t0.Unix())
	rc := insights.RunnerConfig{Feed: feed, Sink: live, History: live, All: true, Params: smallParams(), Poll: time.Millisecond,
		Now: func() time.Time { return time.Unix(now.Load(), 0) }}
	with(&rc)
	r := insights.NewRunner(rc)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	deadline := testwait.End(t)
	for i := 0; i < len(ordered); {
		j := i
		for j < len(ordered) && ordered[j].Time.Before(ordered[i].Time.Add(time.Minute)) {
			j++
		}
		now.Store(ordered[i].Time.Add(time.Minute).Unix())
		appendAll(t, live, ordered[i:j])
		// The clock moves on only once the runner has read this minute, as
		// a live server's records arrive while its clock runs. Without it a
		// runner descheduled between reading its batch and reading the
		// clock (a loaded race run: the full check of session 28) found the
		// clock more than Lateness past that batch, judged minutes whose
		// records it had not read yet, and those came late (a 3 ms sleep
		// after each read of the feed fails the test without this wait).
		last, err := live.LastSeq(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for read() < last && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		i = j
	}
	now.Store(t0.Add(5 * time.Hour).Unix())
	var got []string
	for time.Now().Before(deadline) {
		if got = ids(insightRecords(t, live)); len(got) >= len(want) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(want) != 4 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("live stored %v, retro %v", got, want)
	}
}

// readTo is a Feed that tells how far its reader has read: the after of its
// latest ReadAppended, up to which the runner has observed every record and
// judged its batch.
type readTo struct {
	insights.Feed
	after atomic.Int64
}

func (f *readTo) ReadAppended(ctx context.Context, after int64, limit int) ([]audit.Appended, error) {
	f.after.Store(after)
	return f.Feed.ReadAppended(ctx, after, limit)
}

// TestRunnerOnlyEnabled stores Insights only for what trails enabled.
func TestRunnerOnlyEnabled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s := audittest.NewMemStore()
	hist := burstHistory(t)
	slices.SortStableFunc(hist, func(a, b audit.Record) int { return a.Time.Compare(b.Time) })
	appendAll(t, s, hist)
	r := insights.NewRunner(insights.RunnerConfig{Feed: s, Sink: s, Enabled: enabler{insights.ErrorRate}, Params: smallParams(), Poll: 5 * time.Millisecond,
		Now: func() time.Time { return t0.Add(5 * time.Hour) }})
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	deadline := testwait.End(t)
	for time.Now().Before(deadline) && len(insightRecords(t, s)) < 2 {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	cancel()
	<-done
	recs := insightRecords(t, s)
	if len(recs) != 2 {
		t.Fatalf("%d records, want the error-rate Start and End", len(recs))
	}
	for _, rec := range recs {
		if rec.EventName != "ListUsers" {
			t.Errorf("stored %s", rec.Raw)
		}
	}
}

type enabler []string

func (e enabler) InsightsEnabled(account, region string) []string {
	if account == acct && region == reg {
		return e
	}
	return nil
}

func ids(rs []audit.Record) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.EventID)
	}
	slices.Sort(out)
	return out
}

// TestReplayReal runs Retro over every real record of ../shared/testdata/real
// (stored in the DuckDB store) with no warm-up, so that short captures can
// produce Insights: no error, every Insight stored as a valid record.
func TestReplayReal(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	var rs []audit.Record
	for _, rr := range audittest.RealRecords(t) {
		r, err := audit.Extract(rr.Raw)
		if err != nil {
			t.Fatalf("%s[%d]: %v", rr.File, rr.Index, err)
		}
		rs = append(rs, r)
	}
	appendAll(t, s, rs)
	p := insights.DefaultParams()
	p.WarmUp = 0
	p.MinCount = 5
	res, err := insights.Retro(ctx, s, s, s, insights.RetroOptions{Params: p})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("real records: %d read, %d analysed, %d late, %d Insights stored", res.Records, res.Analysed, res.Late, res.Stored)
	for _, in := range res.Insights {
		t.Logf("  %s %s %s %s %s at %v", in.State, in.InsightType, in.EventSource, in.EventName, in.ErrorCode, in.Start)
	}
	if res.Analysed == 0 || res.Records != int64(len(rs)) {
		t.Errorf("%+v", res)
	}
	if res.Stored != len(res.Insights) {
		t.Errorf("stored %d of %d", res.Stored, len(res.Insights))
	}
}

// blockedFeed holds a read until its context ends.
type blockedFeed struct {
	entered  chan struct{}
	returned atomic.Bool
}

func (b *blockedFeed) ReadAppended(ctx context.Context, _ int64, _ int) ([]audit.Appended, error) {
	close(b.entered)
	<-ctx.Done()
	b.returned.Store(true)
	return nil, ctx.Err()
}

// TestRunnerRunReturnsAfterItsRead: a cancelled Run returns nil, and only
// after the read under way returned.
func TestRunnerRunReturnsAfterItsRead(t *testing.T) {
	f := &blockedFeed{entered: make(chan struct{})}
	r := insights.NewRunner(insights.RunnerConfig{Feed: f, Sink: audittest.NewMemStore(), All: true})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	<-f.entered
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v; want nil", err)
	}
	if !f.returned.Load() {
		t.Error("Run returned before its read")
	}
}

// countingFeed counts the reads of its feed.
type countingFeed struct {
	insights.Feed
	reads atomic.Int64
}

func (c *countingFeed) ReadAppended(ctx context.Context, after int64, limit int) ([]audit.Appended, error) {
	c.reads.Add(1)
	return c.Feed.ReadAppended(ctx, after, limit)
}

// TestRunnerFollowsAMovingFeed: after a read that returned records (but
// not a full batch) the runner reads again soon, not after Poll: it keeps
// up with a feed being appended to; after a read that returned nothing it
// waits Poll.
func TestRunnerFollowsAMovingFeed(t *testing.T) {
	for _, moving := range []bool{false, true} {
		s := audittest.NewMemStore()
		if moving {
			appendAll(t, s, burstHistory(t)[:10])
		}
		f := &countingFeed{Feed: s}
		r := insights.NewRunner(insights.RunnerConfig{Feed: f, Sink: s, All: true, Params: smallParams(), Poll: time.Hour})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		// Moving: a second read comes (waited for until the test's
		// deadline). Not moving: none may come before Poll (1 hour), so
		// wait for the first only, then for more than busyPoll.
		want := int64(1)
		if moving {
			want = 2
		}
		deadline := testwait.End(t)
		for time.Now().Before(deadline) && f.reads.Load() < want {
			time.Sleep(10 * time.Millisecond)
		}
		if !moving {
			time.Sleep(300 * time.Millisecond) // more than busyPoll
		}
		cancel()
		<-done
		switch n := f.reads.Load(); {
		case moving && n < 2:
			t.Errorf("after a read of 10 records: %d reads by the test's deadline; want the next read before Poll (1 hour)", n)
		case !moving && n != 1:
			t.Errorf("after a read of nothing: %d reads; want 1 (the next after Poll, 1 hour)", n)
		}
	}
}

// TestRunnerWokenByCommits: an idle runner (its last read returned
// nothing) waits Poll, unless Wake is signalled (the store committed
// records): it then reads them at once, and waits again for the next
// signal.
func TestRunnerWokenByCommits(t *testing.T) {
	s := audittest.NewMemStore()
	f := &countingFeed{Feed: s}
	wake := make(chan struct{}, 1)
	r := insights.NewRunner(insights.RunnerConfig{Feed: f, Sink: s, All: true, Params: smallParams(), Poll: time.Hour, Wake: wake})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	waitReads := func(n int64) {
		t.Helper()
		for deadline := testwait.End(t); time.Now().Before(deadline) && f.reads.Load() < n; {
			time.Sleep(5 * time.Millisecond)
		}
		if got := f.reads.Load(); got < n {
			t.Fatalf("%d reads by the test's deadline; want %d", got, n)
		}
	}
	waitReads(1)
	time.Sleep(200 * time.Millisecond) // idle: no read before Poll (1 hour) without a signal
	if n := f.reads.Load(); n != 1 {
		t.Fatalf("idle, not woken: %d reads; want 1", n)
	}
	appendAll(t, s, burstHistory(t)[:10])
	wake <- struct{}{}
	waitReads(2)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// recordsFeed counts the records its feed returned and tells how far its
// reader has read.
type recordsFeed struct {
	insights.Feed
	records atomic.Int64
}

func (f *recordsFeed) ReadAppended(ctx context.Context, after int64, limit int) ([]audit.Appended, error) {
	got, err := f.Feed.ReadAppended(ctx, after, limit)
	f.records.Add(int64(len(got)))
	return got, err
}

// feedPosition is the runner's cairn_insights_feed_position in reg.
func feedPosition(t testing.TB, reg *prometheus.Registry) int64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "cairn_insights_feed_position" {
			return int64(mf.GetMetric()[0].GetGauge().GetValue())
		}
	}
	return 0
}

// TestRunnerFollowingMatchesRetro is TestRunnerLiveMatchesRetro over the
// DuckDB store with the runner given the store's commits (Following, as
// `cairn serve` does): it stores the Insights Retro finds, and takes the
// records from the commits, not from the feed (issue 15, session 36: a
// bulk append left the store's tail before the runner read it, and the
// runner read it back from the table).
func TestRunnerFollowingMatchesRetro(t *testing.T) {
	live := openStore(t)
	follow := insights.NewFollowing()
	live.OnCommitted(follow.Committed)
	feed := &recordsFeed{Feed: live}
	reg := prometheus.NewRegistry()
	// The runner has read a minute once its position is at or past the
	// minute's last record.
	liveMatchesRetro(t, live, feed, func(rc *insights.RunnerConfig) { rc.Following, rc.Registerer = follow, reg },
		func() int64 { return feedPosition(t, reg) })
	// A commit the runner finds in the feed before the store has handed it
	// over is read there: a few, not most.
	if n, all := feed.records.Load(), len(burstHistory(t)); n > int64(all/2) {
		t.Errorf("the runner read %d of %d records from the feed; want them from the commits", n, all)
	}
}
