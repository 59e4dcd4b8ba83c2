package detect

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/testwait"
)

const stopLoggingRule = `title: CloudTrail logging stopped
id: 11111111-1111-4111-8111-111111111111
level: high
tags: [attack.defense-evasion]
logsource: {product: aws, service: cloudtrail}
detection:
  sel:
    eventSource: cloudtrail.amazonaws.com
    eventName: [StopLogging, DeleteTrail]
  condition: sel
`

const rootRule = `title: Root used
id: 22222222-2222-4222-8222-222222222222
level: medium
logsource: {product: aws, service: cloudtrail}
detection:
  sel:
    userIdentity.type: Root
  condition: sel
`

func writeRule(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// event returns a stored record of account and region.
func event(t *testing.T, n int, account, region, name, identity string) audit.Record {
	t.Helper()
	raw := fmt.Sprintf(`{"eventVersion":"1.08","userIdentity":{"type":%q,"arn":"arn:aws:iam::%s:user/u%d","accountId":%q},`+
		`"eventTime":"2026-03-01T10:%02d:%02dZ","eventSource":"cloudtrail.amazonaws.com","eventName":%q,"awsRegion":%q,`+
		`"eventID":"ev-%s-%d","readOnly":false,"recipientAccountId":%q}`,
		identity, account, n, account, (n/60)%60, n%60, name, region, account, n, account)
	if region != "us-east-1" { // one eventID per account: the store keeps one
		raw = strings.Replace(raw, fmt.Sprintf(`"ev-%s-%d"`, account, n), fmt.Sprintf(`"ev-%s-%d-%s"`, account, n, region), 1)
	}
	r, err := audit.Extract([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func appendAll(t *testing.T, st *audittest.MemStore, rs ...audit.Record) {
	t.Helper()
	if _, err := st.Append(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
}

func open(t *testing.T, cfg Config) *Detector {
	t.Helper()
	d, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func ids(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.RuleID[:4]+"/"+f.EventID)
	}
	return out
}

// TestFindingsAreDurableAndUnique: a match is stored once per rule and
// event, whatever replays the records: a restart, a lost position, a torn
// last line left by a crash, the same record matched by two rules, the same
// eventID in two accounts.
func TestFindingsAreDurableAndUnique(t *testing.T) {
	ctx := context.Background()
	dir, rules := t.TempDir(), t.TempDir()
	writeRule(t, filepath.Join(rules, "stop.yml"), stopLoggingRule)
	writeRule(t, filepath.Join(rules, "root.yml"), rootRule)
	st := audittest.NewMemStore()
	appendAll(t, st,
		event(t, 1, "111111111111", "us-east-1", "StopLogging", "IAMUser"),
		event(t, 2, "111111111111", "us-east-1", "CreateTrail", "IAMUser"),
		event(t, 3, "111111111111", "us-east-1", "DeleteTrail", "Root"), // two rules
		event(t, 1, "222222222222", "us-east-1", "StopLogging", "IAMUser"),
	)
	cfg := Config{Dir: dir, Feed: st, Folders: []string{rules}}
	// rules run in the order of their files (root.yml, stop.yml)
	want := []string{"1111/ev-111111111111-1", "2222/ev-111111111111-3", "1111/ev-111111111111-3", "1111/ev-222222222222-1"}
	d := open(t, cfg)
	if n, err := d.Sync(ctx); err != nil || n != 4 {
		t.Fatalf("Sync = %d, %v; want 4 findings", n, err)
	}
	check := func(name string, d *Detector) {
		t.Helper()
		d.mu.Lock()
		got := ids(d.findings)
		d.mu.Unlock()
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s: findings %v; want %v", name, got, want)
		}
	}
	check("first sync", d)
	d.Close()

	for _, c := range []struct {
		name   string
		break_ func(t *testing.T)
	}{
		{"restart", func(t *testing.T) {}},
		{"position lost", func(t *testing.T) { os.Remove(filepath.Join(dir, StateFile)) }},
		{"torn last line", func(t *testing.T) {
			os.Remove(filepath.Join(dir, StateFile))
			f, _ := os.OpenFile(filepath.Join(dir, FindingsFile), os.O_APPEND|os.O_WRONLY, 0)
			f.WriteString(`{"findingId":"abc","ruleId":"x`)
			f.Close()
		}},
		{"last line cut", func(t *testing.T) {
			os.Remove(filepath.Join(dir, StateFile))
			p := filepath.Join(dir, FindingsFile)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)-10], 0o600)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.break_(t)
			d := open(t, cfg)
			if _, err := d.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			check(c.name, d)
			d.Close()
			b, _ := os.ReadFile(filepath.Join(dir, FindingsFile))
			if n := strings.Count(string(b), "\n"); n != 4 {
				t.Errorf("findings file has %d lines; want 4", n)
			}
		})
	}
	// New records after a restart are matched from the saved position.
	appendAll(t, st, event(t, 4, "111111111111", "eu-west-1", "StopLogging", "Root"))
	d = open(t, cfg)
	if n, err := d.Sync(ctx); err != nil || n != 2 {
		t.Fatalf("Sync after new records = %d, %v; want 2", n, err)
	}
	f := d.List(Query{Account: "111111111111", Region: "eu-west-1"}).Findings
	if len(f) != 2 || f[0].Principal != "arn:aws:iam::111111111111:user/u4" || f[0].EventName != "StopLogging" ||
		f[0].EventTime != time.Date(2026, 3, 1, 10, 0, 4, 0, time.UTC) {
		t.Errorf("eu-west-1 findings: %+v", f)
	}
}

// TestListIsolatesAccountsAndRegions: List returns only the asked account
// and region, bounded by eventTime, paged without repeats or gaps.
func TestListIsolatesAccountsAndRegions(t *testing.T) {
	rules := t.TempDir()
	writeRule(t, filepath.Join(rules, "stop.yml"), stopLoggingRule)
	st := audittest.NewMemStore()
	var rs []audit.Record
	for i := range 30 {
		rs = append(rs, event(t, i, "111111111111", "us-east-1", "StopLogging", "IAMUser"),
			event(t, i, "222222222222", "us-east-1", "StopLogging", "IAMUser"),
			event(t, i, "111111111111", "us-west-2", "StopLogging", "IAMUser"))
	}
	appendAll(t, st, rs...)
	d := open(t, Config{Dir: t.TempDir(), Feed: st, Folders: []string{rules}})
	if n, err := d.Sync(context.Background()); err != nil || n != 90 {
		t.Fatalf("Sync = %d, %v", n, err)
	}
	for _, lim := range []int{1, 7, 30, 100} {
		var got []string
		q := Query{Account: "222222222222", Region: "us-east-1", Limit: lim}
		for pages := 0; ; pages++ {
			p := d.List(q)
			for _, f := range p.Findings {
				if f.Account != q.Account || f.Region != q.Region {
					t.Fatalf("limit %d: finding of %s/%s listed for %s/%s", lim, f.Account, f.Region, q.Account, q.Region)
				}
				got = append(got, f.EventID)
			}
			if p.Next == 0 {
				break
			}
			if pages > 100 {
				t.Fatal("paging does not end")
			}
			q.Before = p.Next
		}
		if len(got) != 30 || got[0] != "ev-222222222222-29" || got[29] != "ev-222222222222-0" {
			t.Errorf("limit %d: listed %d findings (%v...)", lim, len(got), got[:min(3, len(got))])
		}
	}
	start := time.Date(2026, 3, 1, 10, 0, 10, 0, time.UTC)
	p := d.List(Query{Account: "111111111111", Region: "us-west-2", Start: start, End: start.Add(5 * time.Second), Limit: 100})
	if len(p.Findings) != 5 || p.Findings[4].EventID != "ev-111111111111-10-us-west-2" {
		t.Errorf("time-bounded: %v", ids(p.Findings))
	}
	if p := d.List(Query{Account: "333333333333", Region: "us-east-1"}); len(p.Findings) != 0 {
		t.Errorf("an account without findings sees %d", len(p.Findings))
	}
}

// TestWebhookRetriesUntilDelivered: findings reach a webhook that fails
// (errors, refusals, a closed connection, a receiver that hangs past the
// timeout) then recovers, each at least once and in order, also across a
// restart while it is down; nothing is dropped.
func TestWebhookRetriesUntilDelivered(t *testing.T) {
	for _, failure := range []string{"500", "429", "404", "close", "hang"} {
		t.Run(failure, func(t *testing.T) {
			var mu sync.Mutex
			var got []string
			down := true
			fails := 0
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				isDown := down
				if isDown {
					fails++
				}
				mu.Unlock()
				if isDown {
					switch failure {
					case "close":
						hj, _ := w.(http.Hijacker)
						c, _, _ := hj.Hijack()
						c.Close()
					case "hang":
						select {
						case <-r.Context().Done():
						case <-time.After(500 * time.Millisecond): // past the 100 ms timeout
						}
					default:
						var code int
						fmt.Sscan(failure, &code)
						w.WriteHeader(code)
					}
					return
				}
				var f Finding
				if err := json.NewDecoder(r.Body).Decode(&f); err != nil || r.Header.Get("Authorization") != "Bearer x" {
					t.Errorf("webhook body: %v, auth %q", err, r.Header.Get("Authorization"))
				}
				mu.Lock()
				got = append(got, f.EventID)
				mu.Unlock()
			}))
			defer srv.Close()
			rules := t.TempDir()
			writeRule(t, filepath.Join(rules, "stop.yml"), stopLoggingRule)
			st := audittest.NewMemStore()
			for i := range 5 {
				appendAll(t, st, event(t, i, "111111111111", "us-east-1", "StopLogging", "IAMUser"))
			}
			var logs syncBuffer
			cfg := Config{Dir: t.TempDir(), Feed: st, Folders: []string{rules}, Interval: 10 * time.Millisecond, PollRules: -1,
				Logger: slog.New(slog.NewTextHandler(&logs, nil)),
				Webhook: Webhook{URL: srv.URL + "/hook?token=s3cr3t-token", Headers: map[string]string{"Authorization": "Bearer x"},
					Timeout: 100 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond}}
			run := func(until func(d *Detector) bool) {
				d := open(t, cfg)
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error)
				go func() { done <- d.Run(ctx) }()
				for deadline := testwait.End(t); !until(d); time.Sleep(5 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatal("timed out")
					}
				}
				cancel()
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				d.Close()
			}
			// Down: the findings are stored and wait; the process stops.
			run(func(*Detector) bool { mu.Lock(); defer mu.Unlock(); return fails >= 3 })
			appendAll(t, st, event(t, 5, "111111111111", "us-east-1", "DeleteTrail", "IAMUser"))
			mu.Lock()
			down = false
			mu.Unlock()
			// Up after a restart: every finding is delivered, in order.
			run(func(d *Detector) bool { d.mu.Lock(); defer d.mu.Unlock(); return d.st.Delivered == 6 })
			mu.Lock()
			defer mu.Unlock()
			want := "ev-111111111111-0 ev-111111111111-1 ev-111111111111-2 ev-111111111111-3 ev-111111111111-4 ev-111111111111-5"
			if strings.Join(got, " ") != want {
				t.Errorf("delivered %v; want %s", got, want)
			}
			d := open(t, cfg)
			if d.st.Delivered != 6 {
				t.Errorf("saved webhook position %d; want 6", d.st.Delivered)
			}
			if l := logs.String(); !strings.Contains(l, "webhook POST failed") || strings.Contains(l, "s3cr3t") {
				t.Errorf("the log shows no failure, or the URL's token:\n%s", l)
			}
		})
	}
}

// TestReloadKeepsPreviousGoodRules: a reload puts changed and new rules in
// force; a file that no longer loads (malformed YAML, an unknown modifier,
// a bad regular expression, emptied, removed folder) keeps its previous
// version, and the others still load.
func TestReloadKeepsPreviousGoodRules(t *testing.T) {
	for _, bad := range []struct{ name, text string }{
		{"malformed YAML", "title: [unclosed\n"},
		{"unknown modifier", strings.Replace(stopLoggingRule, "eventName:", "eventName|frobnicate:", 1)},
		{"bad regexp", strings.Replace(stopLoggingRule, "eventName:", "eventName|re:", 1) + "\n  other:\n    eventName|re: '(?<=x)'\n"},
		{"aggregation", strings.Replace(stopLoggingRule, "condition: sel", "condition: sel | count() > 5", 1)},
		{"empty", ""},
		{"folder removed", ""},
	} {
		t.Run(bad.name, func(t *testing.T) {
			rules := t.TempDir()
			stop := filepath.Join(rules, "sub", "stop.yml")
			writeRule(t, stop, stopLoggingRule)
			d := open(t, Config{Folders: []string{rules}})
			if n := len(d.Rules()); n != 1 {
				t.Fatalf("%d rules at start; want 1", n)
			}
			sig := d.rules.Load().sig
			if bad.name == "folder removed" {
				os.RemoveAll(rules)
			} else {
				writeRule(t, stop, bad.text)
				writeRule(t, filepath.Join(rules, "root.yml"), rootRule)
			}
			if d.signature() == sig {
				t.Fatal("the folder's signature did not change")
			}
			d.loadRules("change")
			got := map[string]bool{}
			for _, r := range d.Rules() {
				got[r.Title] = true
			}
			want := map[string]bool{"CloudTrail logging stopped": true, "Root used": bad.name != "folder removed"}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("rule %q loaded = %v; want %v (rules %v)", k, got[k], v, got)
				}
			}
			// Fixed: the new version is in force.
			if bad.name != "folder removed" {
				writeRule(t, stop, strings.Replace(stopLoggingRule, "title: CloudTrail logging stopped", "title: Logging stopped v2", 1))
				d.loadRules("change")
				titles := []string{}
				for _, r := range d.Rules() {
					titles = append(titles, r.Title)
				}
				if strings.Join(titles, ",") != "Root used,Logging stopped v2" {
					t.Errorf("after the fix: %v", titles)
				}
			}
		})
	}
}

// TestRunReloadsOnChangeAndSignal: Run picks up a changed rule by polling
// mtimes, and on Reload.
func TestRunReloadsOnChangeAndSignal(t *testing.T) {
	for _, how := range []string{"poll", "signal"} {
		t.Run(how, func(t *testing.T) {
			rules := t.TempDir()
			writeRule(t, filepath.Join(rules, "stop.yml"), stopLoggingRule)
			cfg := Config{Dir: t.TempDir(), Feed: audittest.NewMemStore(), Folders: []string{rules}, Interval: 5 * time.Millisecond, PollRules: -1}
			if how == "poll" {
				cfg.PollRules = 5 * time.Millisecond
			}
			d := open(t, cfg)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error)
			go func() { done <- d.Run(ctx) }()
			defer func() { cancel(); <-done }()
			writeRule(t, filepath.Join(rules, "root.yml"), rootRule)
			for deadline := testwait.End(t); len(d.Rules()) != 2; time.Sleep(5 * time.Millisecond) {
				if how == "signal" {
					d.Reload()
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d rules; want 2 after the %s", len(d.Rules()), how)
				}
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers (a logger).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
