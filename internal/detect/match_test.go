package detect

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/sigma"
	"github.com/cairn-audit/cairn/internal/sigma/builtin"
)

// fixtureRules are the sigma package's own test rules, and rules on
// eventName written the ways a hostile record could try to slip past the
// event-name index.
func fixtureRules(t testing.TB) *ruleSet {
	t.Helper()
	rules, errs := sigma.Load(sigma.Config{}, "../sigma/testdata/rules")
	if errs != nil {
		t.Fatal(errs)
	}
	for i, src := range []string{
		"sel:\n    eventName: StopLogging",
		"sel:\n    eventName|cased: ConsoleLogin",
		"sel:\n    eventName: ''",
		"sel:\n    eventName: [GetObject, 'σ']",
		"sel:\n    eventName: null",
		"a:\n    eventName: AssumeRole\n  b:\n    errorCode|exists: true",
	} {
		cond := "sel"
		if i == 5 {
			cond = "a and not b"
		}
		r, err := sigma.Parse(fmt.Sprintf("extra%d.yml", i), []byte(fmt.Sprintf(
			"title: extra %d\nid: extra-%d\nlevel: low\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  %s\n  condition: %s\n", i, i, src, cond)))
		if err != nil {
			t.Fatal(err)
		}
		rules = append(rules, r)
	}
	rs := &ruleSet{rules: rules}
	rs.index()
	return rs
}

// TestIndexMatchesLikeEveryRule: matching through the event-name index
// finds exactly what running every rule on every record finds, over the
// real records and records shaped to slip past it (case, Insights
// details, non-ASCII names, an empty or missing eventName).
func TestIndexMatchesLikeEveryRule(t *testing.T) {
	rs := fixtureRules(t)
	var recs []audit.Record
	for _, rr := range audittest.RealRecords(t) {
		if r, err := audit.Extract(rr.Raw); err == nil {
			recs = append(recs, r)
		}
	}
	for i, raw := range []string{
		`"eventName":"stoplogging"`,
		`"eventName":"STOPLOGGING"`,
		`"eventName":"consolelogin"`,
		`"eventName":""`,
		`"eventCategory":"Management","eventName":"","insightDetails":{"eventName":"StopLogging"}`,
		`"eventType":"AwsCloudTrailInsight","insightDetails":{"eventName":"StopLogging","eventSource":"x"}`,
		`"eventName":"ς"`,
		`"eventName":"Σ"`,
		`"eventName":"Stop\u004cogging"`,
		`"eventName":"A","eventName":"StopLogging"`,
		`"eventName":"AssumeRole"`,
		`"eventName":"AssumeRole","errorCode":"AccessDenied"`,
	} {
		r, err := audit.Extract([]byte(fmt.Sprintf(`{"eventID":"h%d","eventTime":"2026-01-01T00:00:00Z","awsRegion":"us-east-1","recipientAccountId":"111111111111",%s}`, i, raw)))
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		recs = append(recs, r)
	}
	if len(recs) < 100 {
		t.Fatalf("%d records", len(recs))
	}
	now := time.Now()
	hits := 0
	shared := &sigma.Decoder{} // as Sync decodes: strings shared across records
	for _, r := range recs {
		got := rs.match(&r, nil, now, nil, shared)
		dec, _ := sigma.DecodeRecord(r.Raw)
		var want []Finding
		for _, rule := range rs.rules {
			if rule.Match(dec) {
				want = append(want, newFinding(sigma.Info{ID: RuleKey(rule), Title: rule.Title, Level: rule.Level, Tags: rule.Tags}, "", &r, dec, now))
			}
		}
		hits += len(want)
		if !slices.EqualFunc(got, want, func(a, b Finding) bool { return reflect.DeepEqual(a, b) }) {
			t.Errorf("record %s (%s): indexed %v; every rule %v", r.EventID, r.EventName, ids(got), ids(want))
		}
	}
	if hits < 10 {
		t.Errorf("%d matches in all: the comparison checks little", hits)
	}
}

// boundedRules are 100 rules shaped like SigmaHQ's CloudTrail rules: each
// names the calls it watches (eventSource and eventName) and adds a
// condition on the caller or the outcome.
func boundedRules(b testing.TB) []*sigma.Rule {
	names := []string{"StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors", "CreateUser", "CreateAccessKey",
		"AttachUserPolicy", "PutUserPolicy", "CreateLoginProfile", "UpdateLoginProfile", "AttachRolePolicy", "PutRolePolicy",
		"UpdateAssumeRolePolicy", "CreateRole", "DeleteFlowLogs", "DisableGuardDuty", "DeleteDetector", "LeaveOrganization",
		"ConsoleLogin", "GetSecretValue", "GetParameter", "GetPasswordData", "ModifySnapshotAttribute", "ModifyImageAttribute",
		"ModifyDBSnapshotAttribute", "AuthorizeSecurityGroupIngress", "ModifyInstanceAttribute", "SendCommand", "StartSession",
		"SendSSHPublicKey", "InvokeModel", "CreateFunction20150331", "PublishLayerVersion20181031", "GetFederationToken",
		"CreateTrustAnchor", "PutBucketPolicy", "PutBucketAcl", "DeleteBucket", "CreateKeyPair", "ImportKeyPair"}
	var out []*sigma.Rule
	for i := range 100 {
		n1, n2 := names[i%len(names)], names[(i*7+3)%len(names)]
		extra := []string{"userIdentity.type: Root", "errorCode|exists: false", "sourceIPAddress|cidr: 0.0.0.0/0",
			"userIdentity.arn|contains: admin", "userAgent|startswith: aws-cli"}[i%5]
		src := fmt.Sprintf("title: bounded %d\nid: bounded-%d\nlevel: medium\nlogsource: {product: aws, service: cloudtrail}\n"+
			"detection:\n  sel:\n    eventName: [%s, %s]\n    %s\n  condition: sel\n", i, i, n1, n2, extra)
		r, err := sigma.Parse(fmt.Sprintf("b%d.yml", i), []byte(src))
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// BenchmarkLive is the live path's cost per stored event, decoding
// included, on one core, with 100 rules over the real records: "bounded"
// are rules that name their calls (as SigmaHQ's CloudTrail rules do),
// through the event-name index as Sync runs them; "fixture" are the sigma
// package's fixture rules repeated, a quarter of which match any call;
// "every" decodes every record with sigma.DecodeRecord and runs every
// fixture rule, the cost without the index and the decoder.
func BenchmarkLive(b *testing.B) {
	base := fixtureRules(b)
	var rules []*sigma.Rule
	for len(rules) < 100 {
		rules = append(rules, base.rules...)
	}
	rules = rules[:100]
	rs := &ruleSet{rules: rules}
	rs.index()
	bounded := &ruleSet{rules: boundedRules(b)}
	bounded.index()
	var recs []audit.Record
	for _, rr := range audittest.RealRecords(b) {
		if r, err := audit.Extract(rr.Raw); err == nil {
			recs = append(recs, r)
		}
	}
	builtinRules, err := builtin.Rules()
	if err != nil {
		b.Fatal(err)
	}
	var hundred []*sigma.Rule
	for len(hundred) < 100 {
		hundred = append(hundred, builtinRules...)
	}
	builtinSet := &ruleSet{rules: hundred[:100]}
	builtinSet.index()
	now := time.Now()
	// "+hunts": with the built-in stateful hunts on, as Sync runs them
	// with detections.builtin (every record decoded at least in brief).
	for _, c := range []struct {
		name  string
		set   *ruleSet
		hunts bool
	}{{"bounded", bounded, false}, {"fixture", rs, false}, {"bounded+hunts", bounded, true}, {"builtin+hunts", builtinSet, true}} {
		b.Run(c.name, func(b *testing.B) {
			var hunts []sigma.Stateful
			if c.hunts {
				hunts = builtin.Stateful(builtin.Config{})
			}
			var dec sigma.Decoder
			n := 0
			var found []Finding
			cpu0 := cpuTime()
			for b.Loop() {
				found = c.set.match(&recs[n%len(recs)], hunts, now, found[:0], &dec)
				n++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n)/1000, "µs/event")
			b.ReportMetric((cpuTime()-cpu0).Seconds()*1e6/float64(n), "cpu-µs/event")
		})
	}
	b.Run("every", func(b *testing.B) {
		n := 0
		for b.Loop() {
			dec, _ := sigma.DecodeRecord(recs[n%len(recs)].Raw) // as a rule-by-rule matcher would
			for _, r := range rs.rules {
				r.Match(dec)
			}
			n++
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n)/1000, "µs/event")
	})
}
