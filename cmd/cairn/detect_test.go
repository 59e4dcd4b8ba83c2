package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/client"
	"github.com/cairn-audit/cairn/internal/detect"
	"github.com/cairn-audit/cairn/internal/testwait"
)

const trailChangeRule = `title: Trail created or stopped
id: 3f9a0d8e-7c1b-4c55-9a0e-5b2d7e1f0c01
level: high
tags: [attack.defense-evasion]
logsource: {product: aws, service: cloudtrail}
detection:
  sel:
    eventSource: cloudtrail.amazonaws.com
    eventName: [CreateTrail, StopLogging]
  condition: sel
`

const consoleNoMFARule = `title: Console sign-in without MFA
id: 3f9a0d8e-7c1b-4c55-9a0e-5b2d7e1f0c02
level: medium
logsource: {product: aws, service: cloudtrail}
detection:
  sel:
    eventName: ConsoleLogin
    additionalEventData.MFAUsed: 'no'
  condition: sel
`

// TestLiveDetection: every event the server stores (its own calls, imported
// records) is matched against the configured rules; findings are listed
// through ListFindings to their account and region only, survive a
// restart without duplicates, reach a webhook that was down, and are
// counted in /metrics. A refused rule does not stop the server.
func TestLiveDetection(t *testing.T) {
	var mu sync.Mutex
	hooked := map[string]int{}
	failures := 2
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if failures > 0 {
			failures--
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var f detect.Finding
		if err := json.NewDecoder(r.Body).Decode(&f); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		hooked[f.ID]++
	}))
	defer hook.Close()

	dir := t.TempDir()
	rules := filepath.Join(dir, "rules")
	if err := os.Mkdir(rules, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(rules, "trail.yml"), trailChangeRule)
	writeFile(t, filepath.Join(rules, "console.yml"), consoleNoMFARule)
	writeFile(t, filepath.Join(rules, "bad.yml"), strings.Replace(trailChangeRule, "eventName:", "eventName|frobnicate:", 1))
	cfg := fmt.Sprintf(twoAccounts, 90) + fmt.Sprintf("detections:\n  rules: [%q, %q]\n  builtin: false\n  webhook: {url: %q, max_backoff: 1s}\n",
		rules, filepath.Join(dir, "missing"), hook.URL)
	ts := startServer(t, cfg, dir)
	ctx := context.Background()
	as := func(key, secret, region string) *client.Client { return ts.cairn(t, key, secret, region) }
	aliceC := as("AKIAALICE00000000001", "alice-secret-key", "us-east-1")
	bobC := as("AKIABOB0000000000001", "bob-secret-key", "us-east-1")
	aliceWest := as("AKIAALICE00000000001", "alice-secret-key", "eu-west-1")

	// Alice's own calls, recorded by the server; bob's; imported records.
	if _, err := alice(ts).CreateTrail(ctx, &cloudtrail.CreateTrailInput{Name: aws.String("alice-trail"), S3BucketName: aws.String("cairn-logs")}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice(ts).StopLogging(ctx, &cloudtrail.StopLoggingInput{Name: aws.String("alice-trail")}); err != nil {
		t.Fatal(err)
	}
	bob := ts.client("AKIABOB0000000000001", "bob-secret-key", "us-east-1")
	if _, err := bob.CreateTrail(ctx, &cloudtrail.CreateTrailInput{Name: aws.String("bob-trail"), S3BucketName: aws.String("cairn-logs")}); err != nil {
		t.Fatal(err)
	}
	login := func(account, id string) audit.Record {
		raw := fmt.Sprintf(`{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::%s:user/mallory","accountId":%q},`+
			`"eventTime":"2026-03-01T10:00:00Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","awsRegion":"us-east-1",`+
			`"eventID":%q,"additionalEventData":{"MFAUsed":"No"},"recipientAccountId":%q}`, account, account, id, account)
		r, err := audit.Extract([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if _, err := aliceC.Importer().Append(ctx, []audit.Record{login("111111111111", "login-a")}); err != nil {
		t.Fatal(err)
	}
	// Alice cannot plant a record (and so a finding) in bob's account.
	if res, fails, err := aliceC.Importer().AppendReport(ctx, []audit.Record{login("222222222222", "login-planted")}); err != nil || res.Inserted != 0 || len(fails) != 1 {
		t.Errorf("alice's import into bob's account: %+v, %v, %v; want it refused", res, fails, err)
	}

	listAll := func(c *client.Client, q client.FindingsQuery) []detect.Finding {
		t.Helper()
		var all []detect.Finding
		for {
			p, err := c.ListFindings(ctx, q)
			if err != nil {
				t.Fatalf("ListFindings: %v", err)
			}
			all = append(all, p.Findings...)
			if p.NextToken == "" {
				return all
			}
			q.NextToken = p.NextToken
		}
	}
	names := func(fs []detect.Finding) string {
		var s []string
		for _, f := range fs {
			s = append(s, f.EventName+"@"+f.Account)
		}
		return strings.Join(s, " ")
	}
	// One finding per recorded call: a call the SDK retried (a throttled
	// attempt under load is recorded too, as AWS records it) is two events
	// and two findings, so the expected list counts alice's recorded calls.
	recorded := func(name string) int {
		out, err := alice(ts).LookupEvents(ctx, &cloudtrail.LookupEventsInput{LookupAttributes: []types.LookupAttribute{
			{AttributeKey: types.LookupAttributeKeyEventName, AttributeValue: aws.String(name)}}})
		if err != nil {
			t.Fatal(err)
		}
		return len(out.Events)
	}
	want := func() string {
		return strings.TrimSpace("ConsoleLogin@111111111111 " + strings.Repeat("StopLogging@111111111111 ", recorded("StopLogging")) +
			strings.Repeat("CreateTrail@111111111111 ", recorded("CreateTrail")))
	}
	aliceWant := want()
	testwait.UntilNil(t, "alice's findings", func() error {
		if got := names(listAll(aliceC, client.FindingsQuery{})); got != aliceWant {
			aliceWant = want()
			return fmt.Errorf("%s; want %s", got, aliceWant)
		}
		return nil
	})
	// One per page, to the end: the same.
	if got := names(listAll(aliceC, client.FindingsQuery{MaxResults: 1})); got != aliceWant {
		t.Errorf("alice's findings one per page: %s", got)
	}
	if got := names(listAll(bobC, client.FindingsQuery{})); got != "CreateTrail@222222222222" {
		t.Errorf("bob's findings: %q; want his CreateTrail only", got)
	}
	if got := listAll(aliceWest, client.FindingsQuery{}); len(got) != 0 {
		t.Errorf("alice in eu-west-1 sees %s", names(got))
	}
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	if got := names(listAll(aliceC, client.FindingsQuery{Start: t0, End: t0.Add(2 * time.Hour)})); got != "ConsoleLogin@111111111111" {
		t.Errorf("alice's findings of 2026-03-01 09:00-11:00: %q", got)
	}
	f := listAll(aliceC, client.FindingsQuery{})[0]
	if f.RuleID != "3f9a0d8e-7c1b-4c55-9a0e-5b2d7e1f0c02" || f.Level != "medium" || f.Principal != "arn:aws:iam::111111111111:user/mallory" ||
		f.EventID != "login-a" || f.Region != "us-east-1" || f.Title != "Console sign-in without MFA" {
		t.Errorf("finding: %+v", f)
	}

	// Hostile input: AWS-shaped errors, never another account's findings.
	code := func(err error) string {
		var ie *client.ImportError
		if errors.As(err, &ie) {
			return ie.Code
		}
		return fmt.Sprint(err)
	}
	bobPage, err := bobC.ListFindings(ctx, client.FindingsQuery{MaxResults: 1})
	if err != nil {
		t.Fatal(err)
	}
	alicePage, err := aliceC.ListFindings(ctx, client.FindingsQuery{MaxResults: 1})
	if err != nil || alicePage.NextToken == "" {
		t.Fatalf("alice's first page: %+v, %v", alicePage, err)
	}
	for _, c := range []struct {
		name string
		who  *client.Client
		q    client.FindingsQuery
		want string
	}{
		{"alice's token replayed by bob", bobC, client.FindingsQuery{NextToken: alicePage.NextToken}, "InvalidNextTokenException"},
		{"alice's token in another region", aliceWest, client.FindingsQuery{NextToken: alicePage.NextToken}, "InvalidNextTokenException"},
		{"alice's token with other times", aliceC, client.FindingsQuery{Start: t0, NextToken: alicePage.NextToken}, "InvalidNextTokenException"},
		{"garbage token", aliceC, client.FindingsQuery{NextToken: "AAAA"}, "InvalidNextTokenException"},
		{"token altered", aliceC, client.FindingsQuery{NextToken: alicePage.NextToken[:len(alicePage.NextToken)-2] + "xx"}, "InvalidNextTokenException"},
		{"huge token", aliceC, client.FindingsQuery{NextToken: strings.Repeat("A", 100000)}, "InvalidNextTokenException"},
		{"MaxResults -1", aliceC, client.FindingsQuery{MaxResults: -1}, "InvalidMaxResultsException"},
		{"MaxResults 5000", aliceC, client.FindingsQuery{MaxResults: 5000}, "InvalidMaxResultsException"},
		{"EndTime before StartTime", aliceC, client.FindingsQuery{Start: t0, End: t0.Add(-time.Hour)}, "InvalidTimeRangeException"},
		{"not text", aliceC, client.FindingsQuery{NextToken: "\x00\u202e"}, "SerializationException"},
	} {
		if _, err := c.who.ListFindings(ctx, c.q); code(err) != c.want {
			t.Errorf("%s: %v; want %s", c.name, err, c.want)
		}
	}
	_ = bobPage

	// The webhook was down for two attempts: every finding reaches it.
	testwait.UntilNil(t, "4 distinct findings at the webhook", func() error {
		mu.Lock()
		n := len(hooked)
		mu.Unlock()
		if n != 4 {
			return fmt.Errorf("%d", n)
		}
		return nil
	})
	if v := metric(t, ts, `cairn_detect_findings_total{level="high"}`); v != "3" {
		t.Errorf(`cairn_detect_findings_total{level="high"} = %q; want 3`, v)
	}
	if v := metric(t, ts, "cairn_detect_rules_refused"); v != "2" { // bad.yml and the missing folder
		t.Errorf("cairn_detect_rules_refused = %q; want 2", v)
	}

	// After a restart, with the position lost: the same findings, once.
	ts.stop()
	if err := os.Remove(filepath.Join(dir, detect.StateFile)); err != nil {
		t.Fatal(err)
	}
	ts = startServer(t, cfg, dir)
	aliceC = as("AKIAALICE00000000001", "alice-secret-key", "us-east-1")
	aliceC.ListFindings(ctx, client.FindingsQuery{}) // recorded; matches nothing
	testwait.Until(t, "the restarted server matching events (cairn_detect_events_total above 0)", func() bool {
		v := metric(t, ts, "cairn_detect_events_total")
		return v != "0" && v != ""
	})
	if got := names(listAll(aliceC, client.FindingsQuery{})); got != aliceWant {
		t.Errorf("alice's findings after a restart: %s; want %s", got, aliceWant)
	}
}

// TestListFindingsWithoutDetections: a server without a detections section
// answers ListFindings UnsupportedOperationException.
func TestListFindingsWithoutDetections(t *testing.T) {
	ts := startServer(t, fmt.Sprintf(twoAccounts, 90), "")
	c := ts.cairn(t, "AKIAALICE00000000001", "alice-secret-key", "us-east-1")
	_, err := c.ListFindings(context.Background(), client.FindingsQuery{})
	var ie *client.ImportError
	if !errors.As(err, &ie) || ie.Code != "UnsupportedOperationException" {
		t.Errorf("ListFindings = %v; want UnsupportedOperationException", err)
	}
}

// BenchmarkWriteAckWithDetection measures the acknowledgement of a write
// call (StopLogging: answered once its record is journaled and fsynced)
// without live detection and with 100 rules that all match it, so every
// call makes 100 findings to store, fsync and post. The detector reads the
// store after the fact: the acknowledgement should not move.
func BenchmarkWriteAckWithDetection(b *testing.B) {
	for _, mode := range []string{"off", "on"} {
		b.Run(mode, func(b *testing.B) {
			dir := b.TempDir()
			cfg := fmt.Sprintf(twoAccounts, 90)
			if mode == "on" {
				rules := filepath.Join(dir, "rules")
				if err := os.Mkdir(rules, 0o700); err != nil {
					b.Fatal(err)
				}
				for i := range 100 {
					r := strings.Replace(trailChangeRule, "5b2d7e1f0c01", fmt.Sprintf("%012d", i), 1)
					if err := os.WriteFile(filepath.Join(rules, fmt.Sprintf("r%03d.yml", i)), []byte(r), 0o600); err != nil {
						b.Fatal(err)
					}
				}
				hook := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
				defer hook.Close()
				cfg += fmt.Sprintf("detections:\n  rules: [%q]\n  builtin: false\n  webhook: {url: %q}\n", rules, hook.URL)
			}
			ts := startServer(b, cfg, dir)
			c := ts.client("AKIAALICE00000000001", "alice-secret-key", "us-east-1")
			ctx := context.Background()
			var acks []time.Duration
			for b.Loop() {
				t0 := time.Now()
				c.StopLogging(ctx, &cloudtrail.StopLoggingInput{Name: aws.String("probe")}) // TrailNotFound, recorded durably
				acks = append(acks, time.Since(t0))
			}
			if mode == "on" { // the detector did its work meanwhile
				testwait.Until(b, "findings stored", func() bool {
					st, err := os.Stat(filepath.Join(dir, detect.FindingsFile))
					return err == nil && st.Size() > 0
				})
			}
			slices.Sort(acks)
			b.ReportMetric(ms(acks[len(acks)/2]), "ack-p50-ms")
			b.ReportMetric(ms(acks[len(acks)*99/100]), "ack-p99-ms")
		})
	}
}

// TestLiveDetectionBuiltinHunts: with builtin on, serve runs the stateful
// built-in hunts live too, and a restart (the hunts' memory lost, the
// position kept) neither reports a known principal as new again nor misses
// a genuine newcomer.
func TestLiveDetectionBuiltinHunts(t *testing.T) {
	dir := t.TempDir()
	cfg := fmt.Sprintf(twoAccounts, 90) + "detections:\n  builtin: true\n  poll_interval: 0s\n  hunts: {new_principal_baseline: 1h}\n"
	ctx := context.Background()
	write := func(user, id string, min int) audit.Record {
		at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(min) * time.Minute)
		raw := fmt.Sprintf(`{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::111111111111:user/%s","accountId":"111111111111"},`+
			`"eventTime":%q,"eventSource":"s3.amazonaws.com","eventName":"PutBucketTagging","awsRegion":"us-east-1",`+
			`"eventID":%q,"readOnly":false,"recipientAccountId":"111111111111"}`, user, at.Format(time.RFC3339), id)
		r, err := audit.Extract([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	const newPrincipal = "Write call by a principal never seen before"
	// newcomers returns the principals the new-principal hunt reported,
	// with how many times, once the finding on eventID is listed.
	newcomers := func(ts *testServer, eventID string) map[string]int {
		t.Helper()
		c := ts.cairn(t, "AKIAALICE00000000001", "alice-secret-key", "us-east-1")
		var got map[string]int
		testwait.UntilNil(t, "a finding on "+eventID, func() error {
			found := false
			got = map[string]int{}
			for q := (client.FindingsQuery{}); ; {
				p, err := c.ListFindings(ctx, q)
				if err != nil {
					t.Fatalf("ListFindings: %v", err)
				}
				for _, f := range p.Findings {
					if f.Title == newPrincipal {
						got[f.Principal[strings.LastIndex(f.Principal, "/")+1:]]++
						found = found || f.EventID == eventID
					}
				}
				if q.NextToken = p.NextToken; q.NextToken == "" {
					break
				}
			}
			if !found {
				return fmt.Errorf("new principals reported: %v", got)
			}
			return nil
		})
		return got
	}
	ts := startServer(t, cfg, dir)
	imp := ts.cairn(t, "AKIAALICE00000000001", "alice-secret-key", "us-east-1")
	if _, err := imp.Importer().Append(ctx, []audit.Record{write("u1", "u1-0", 0), write("u2", "u2-5", 5), write("late", "late-120", 120)}); err != nil {
		t.Fatal(err)
	}
	if got := newcomers(ts, "late-120"); got["late"] != 1 || got["u1"]+got["u2"] != 0 {
		t.Fatalf("new principals before the restart: %v; want late once", got)
	}
	ts.stop()

	ts = startServer(t, cfg, dir)
	imp = ts.cairn(t, "AKIAALICE00000000001", "alice-secret-key", "us-east-1")
	if _, err := imp.Importer().Append(ctx, []audit.Record{write("u1", "u1-180", 180), write("late", "late-181", 181),
		write("newcomer", "new-182", 182)}); err != nil {
		t.Fatal(err)
	}
	got := newcomers(ts, "new-182")
	if got["late"] != 1 || got["newcomer"] != 1 || got["u1"]+got["u2"] != 0 {
		t.Errorf("new principals after the restart: %v; want late and newcomer once each", got)
	}
}
