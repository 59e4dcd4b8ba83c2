package detect

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/sigma"
	"github.com/cairn-audit/cairn/internal/sigma/builtin"
)

// call is a stored record of principal user in account at t (minutes after
// 2026-03-01T00:00Z), a write, refused with errorCode when set.
func call(t *testing.T, id, account, user string, min int, errorCode string) audit.Record {
	t.Helper()
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(min) * time.Minute)
	raw := fmt.Sprintf(`{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::%s:user/%s","accountId":%q},`+
		`"eventTime":%q,"eventSource":"iam.amazonaws.com","eventName":"CreateUser","awsRegion":"us-east-1",`+
		`"eventID":%q,"readOnly":false,"recipientAccountId":%q%s}`,
		account, user, account, at.Format(time.RFC3339), id, account, map[bool]string{true: `,"errorCode":"` + errorCode + `"`}[errorCode != ""])
	r, err := audit.Extract([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestStatefulHuntsAcrossRestart: the stateful built-in hunts run live, and
// a restart (their memory lost) neither fires again on what they had
// already reported nor misses a genuine new finding: the detector warms
// them up over the records before its saved position.
func TestStatefulHuntsAcrossRestart(t *testing.T) {
	const acct = "111111111111"
	hunts := builtin.Config{NewPrincipalBaseline: time.Hour, DeniedBurst: 3, DeniedWindow: 10 * time.Minute}
	before := func(t *testing.T) []audit.Record {
		return []audit.Record{
			call(t, "u1-0", acct, "u1", 0, ""), call(t, "u2-5", acct, "u2", 5, ""), call(t, "p-10", acct, "prober", 10, ""),
			call(t, "late-120", acct, "late", 120, ""), // after the 1h baseline: a finding
			call(t, "d-121", acct, "prober", 121, "AccessDenied"), call(t, "d-122", acct, "prober", 122, "AccessDenied"),
			call(t, "d-123", acct, "prober", 123, "AccessDenied"), // burst of 3: a finding
		}
	}
	for _, c := range []struct {
		name   string
		warmUp int
		after  func(t *testing.T) []audit.Record
		want   []string // titles of the findings after the restart
	}{
		{"known principals and a fired burst stay quiet", 0, func(t *testing.T) []audit.Record {
			return []audit.Record{call(t, "u1-180", acct, "u1", 180, ""), call(t, "late-181", acct, "late", 181, ""),
				call(t, "d-124", acct, "prober", 124, "AccessDenied"), call(t, "d-125", acct, "prober", 125, "AccessDenied"),
				call(t, "d-126", acct, "prober", 126, "AccessDenied")}
		}, nil},
		{"a genuine new principal fires", 0, func(t *testing.T) []audit.Record {
			return []audit.Record{call(t, "u2-180", acct, "u2", 180, ""), call(t, "new-181", acct, "newcomer", 181, "")}
		}, []string{"Write call by a principal never seen before/new-181"}},
		{"a new burst after the window fires", 0, func(t *testing.T) []audit.Record {
			return []audit.Record{call(t, "d-200", acct, "prober", 200, "AccessDenied"),
				call(t, "d-201", acct, "prober", 201, "AccessDenied"), call(t, "d-202", acct, "prober", 202, "AccessDenied")}
		}, []string{"Burst of access-denied calls/d-202"}},
		// A warm-up shorter than the history (the last 2 records, of
		// prober): the account's history begins there, so the hunt learns
		// a fresh baseline: u1, unseen by the warm-up, is not reported
		// (nor, within that baseline, a newcomer: missed, not flooded).
		{"warm-up shorter than the history", 2, func(t *testing.T) []audit.Record {
			return []audit.Record{call(t, "u1-130", acct, "u1", 130, ""), call(t, "new-131", acct, "newcomer", 131, "")}
		}, nil},
		// Without the warm-up (the hunts' memory empty) the burst fires
		// again and the new principal is missed: what the warm-up is for.
		{"no warm-up: the burst fires again", -1, func(t *testing.T) []audit.Record {
			return []audit.Record{call(t, "d-124", acct, "prober", 124, "AccessDenied"), call(t, "d-125", acct, "prober", 125, "AccessDenied"),
				call(t, "d-126", acct, "prober", 126, "AccessDenied"), call(t, "new-181", acct, "newcomer", 181, "")}
		}, []string{"Burst of access-denied calls/d-126"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			dir, st := t.TempDir(), audittest.NewMemStore()
			appendAll(t, st, before(t)...)
			cfg := Config{Dir: dir, Feed: st, Stateful: builtin.Stateful(hunts), WarmUp: c.warmUp}
			d := open(t, cfg)
			if _, err := d.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			got := titles(d.List(Query{Account: acct, Region: "us-east-1"}).Findings)
			if want := "Write call by a principal never seen before/late-120 Burst of access-denied calls/d-123"; got != want {
				t.Fatalf("findings before the restart: %s; want %s", got, want)
			}
			d.Close()

			appendAll(t, st, c.after(t)...)
			cfg.Stateful = builtin.Stateful(hunts) // a restart: empty memory
			d = open(t, cfg)
			if _, err := d.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			all := d.List(Query{Account: acct, Region: "us-east-1"}).Findings
			got = titles(all[:len(all)-2])
			if want := strings.Join(c.want, " "); got != want {
				t.Errorf("findings after the restart: %q; want %q", got, want)
			}
		})
	}
}

// titles lists findings oldest detected first as title/eventID, sorted
// within one detection.
func titles(fs []Finding) string {
	var out []string
	for i := len(fs) - 1; i >= 0; i-- {
		out = append(out, fs[i].Title+"/"+fs[i].EventID)
	}
	return strings.Join(out, " ")
}

// TestOneFindingShape: a live finding's JSON (file, webhook, API) is the
// JSON `cairn hunt --output json` prints (sigma.Finding) with findingId and
// detectedAt, for a rule's finding and a stateful hunt's; tags is a list
// and principal a string even when empty.
func TestOneFindingShape(t *testing.T) {
	keys := func(v any) map[string]any {
		t.Helper()
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]any{}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	rec := sigma.Record{"eventID": "e1", "eventTime": "2026-03-01T00:00:00Z"}
	for _, c := range []struct {
		name   string
		in     sigma.Info
		detail string
	}{
		{"rule without tags", sigma.Info{ID: "r1", Title: "t", Level: "low"}, ""},
		{"rule with tags", sigma.Info{ID: "r2", Title: "t", Level: "high", Tags: []string{"attack.x"}}, ""},
		{"stateful hunt", sigma.Info{ID: "h1", Title: "t", Level: "medium"}, "3 denied calls"},
	} {
		t.Run(c.name, func(t *testing.T) {
			hunt := sigma.FindingOf(rec, c.in)
			hunt.Detail = c.detail
			r := call(t, "e1", "111111111111", "u", 0, "")
			live := keys(newFinding(c.in, c.detail, &r, rec, time.Unix(0, 0)))
			want := keys(hunt)
			for k, v := range want {
				if _, ok := live[k]; !ok {
					t.Errorf("live finding lacks %q (hunt's: %v)", k, v)
				}
			}
			for k := range live {
				if _, ok := want[k]; !ok && k != "findingId" && k != "detectedAt" {
					t.Errorf("live finding has %q, cairn hunt's has not", k)
				}
			}
			if _, ok := want["tags"].([]any); !ok {
				t.Errorf("tags = %#v; want a list", want["tags"])
			}
			if _, ok := want["principal"].(string); !ok {
				t.Errorf("principal = %#v; want a string", want["principal"])
			}
			if (c.detail != "") != (live["detail"] != nil) {
				t.Errorf("detail = %#v", live["detail"])
			}
		})
	}
}
