package sigma

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
)

// rule wraps a detection block into a full CloudTrail rule.
func rule(detection string) string {
	return "title: t\nid: 00000000-0000-0000-0000-000000000000\nlevel: high\nlogsource:\n  product: aws\n  service: cloudtrail\ndetection:\n" + detection
}

func mustParse(t testing.TB, src string) *Rule {
	t.Helper()
	r, err := Parse("test.yml", []byte(src))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, src)
	}
	return r
}

func mustRecord(t testing.TB, js string) Record {
	t.Helper()
	r, err := DecodeRecord([]byte(js))
	if err != nil {
		t.Fatalf("record: %v", err)
	}
	return r
}

const rec = `{"eventName":"StopLogging","eventSource":"cloudtrail.amazonaws.com","awsRegion":"us-east-1",
"sourceIPAddress":"203.0.113.7","userAgent":"aws-cli/2.15.0 Python/3.11 Linux",
"userIdentity":{"type":"IAMUser","userName":"Alice","arn":"arn:aws:iam::111122223333:user/Alice",
 "sessionContext":{"attributes":{"mfaAuthenticated":"false"}}},
"requestParameters":{"bucketName":"Secret-Bucket","name":"trail-1","cmd":"powershell -enc SQBFAFgA","tags":["a","prod"]},
"additionalEventData":{"MFAUsed":"No"},"readOnly":false,"eventVersion":"1.08","count":42,"errorCode":null,
"responseElements":{"data":"dGhlIGNhaXJuIGF1ZGl0"}}`

// TestValues covers each value form and modifier: for each, a selection
// that must match the record and one that must not.
func TestValues(t *testing.T) {
	cases := []struct {
		name, sel string
		want      bool
	}{
		{"equal", `eventName: StopLogging`, true},
		{"equal case-insensitive", `eventName: stoplogging`, true},
		{"equal other", `eventName: StartLogging`, false},
		{"list is OR", `eventName: [DeleteTrail, StopLogging]`, true},
		{"list none", `eventName: [DeleteTrail, UpdateTrail]`, false},
		{"dotted path", `userIdentity.type: IAMUser`, true},
		{"deep path", `userIdentity.sessionContext.attributes.mfaAuthenticated: 'false'`, true},
		{"path through scalar", `eventName.x: StopLogging`, false},
		{"absent path", `requestParameters.nope: x`, false},
		{"bucket name ci", `requestParameters.bucketName: secret-bucket`, true},
		{"MFAUsed", `additionalEventData.MFAUsed: 'No'`, true},
		{"bool false", `readOnly: false`, true},
		{"bool true", `readOnly: true`, false},
		{"string bool", `userIdentity.sessionContext.attributes.mfaAuthenticated: false`, true},
		{"number", `count: 42`, true},
		{"number other", `count: 43`, false},
		{"number as string", `count: '42'`, true},
		{"number float", `count: 42.0`, true},
		{"null matches null", `errorCode: null`, true},
		{"null matches absent", `errorMessage: null`, true},
		{"null not present", `eventName: null`, false},
		{"empty string", `eventName: ''`, false},
		{"wildcard star", `eventName: Stop*`, true},
		{"wildcard middle", `eventName: 'S*Log*g'`, true},
		{"wildcard question", `eventName: StopLoggin?`, true},
		{"wildcard question too short", `eventName: StopLogging?`, false},
		{"escaped star literal", `eventName: 'Stop\*'`, false},
		{"star alone", `eventName: '*'`, true},
		{"array element", `requestParameters.tags: PROD`, true},
		{"array none", `requestParameters.tags: dev`, false},
		{"contains", `userAgent|contains: CLI/2`, true},
		{"contains no", `userAgent|contains: boto3`, false},
		{"startswith", `userAgent|startswith: AWS-cli`, true},
		{"startswith no", `userAgent|startswith: cli`, false},
		{"endswith", `userAgent|endswith: linux`, true},
		{"endswith no", `userAgent|endswith: Darwin`, false},
		{"contains list OR", `userAgent|contains: [boto3, Python]`, true},
		{"contains all", `userAgent|contains|all: [aws-cli, Python, Linux]`, true},
		{"contains all one missing", `userAgent|contains|all: [aws-cli, Python, Windows]`, false},
		{"cased", `eventName|cased: stoplogging`, false},
		{"cased exact", `eventName|cased: StopLogging`, true},
		{"contains cased", `userAgent|contains|cased: CLI`, false},
		{"re", `eventName|re: '^Stop(Logging|Trail)$'`, true},
		{"re is case-sensitive", `eventName|re: '^stoplogging$'`, false},
		{"re i flag", `eventName|re|i: '^stoplogging$'`, true},
		{"re partial", `userAgent|re: 'cli/2\.\d+'`, true},
		{"cidr", `sourceIPAddress|cidr: 203.0.113.0/24`, true},
		{"cidr list", `sourceIPAddress|cidr: [10.0.0.0/8, 203.0.113.0/28]`, true},
		{"cidr no", `sourceIPAddress|cidr: 198.51.100.0/24`, false},
		{"cidr not an IP", `eventName|cidr: 0.0.0.0/0`, false},
		{"exists true", `errorCode|exists: true`, false},
		{"exists true present", `eventName|exists: true`, true},
		{"exists false", `errorMessage|exists: false`, true},
		{"exists false present", `eventName|exists: false`, false},
		{"windash", `requestParameters.cmd|windash|contains: ' /enc '`, true},
		{"windash no", `requestParameters.cmd|windash|contains: ' /dec '`, false},
		{"base64", `responseElements.data: dGhlIGNhaXJuIGF1ZGl0`, true},
		{"base64 modifier", `responseElements.data|base64: the cairn audit`, true},
		{"base64 modifier other", `responseElements.data|base64: the cairn audix`, false},
		{"base64offset contains", `responseElements.data|base64offset|contains: cairn`, true},
		{"base64offset contains other", `responseElements.data|base64offset|contains: trail`, false},
		{"gt", `count|gt: 41`, true},
		{"gte", `count|gte: 42`, true},
		{"lt", `count|lt: 42`, false},
		{"lte", `count|lte: 42`, true},
		{"fieldref equal", `eventName|fieldref: eventName`, true},
		{"fieldref differs", `userIdentity.arn|fieldref: userIdentity.userName`, false},
		{"fieldref endswith", `userIdentity.arn|fieldref|endswith: userIdentity.userName`, true},
		{"fieldref contains no", `userIdentity.arn|fieldref|contains: requestParameters.name`, false},
		{"fieldref absent", `eventName|fieldref: requestParameters.nope`, false},
		{"fieldref list OR", `eventName|fieldref: [awsRegion, eventName]`, true},
		{"fieldref all", `eventName|fieldref|all: [awsRegion, eventName]`, false},
		{"map ANDs fields", "eventName: StopLogging\n    awsRegion: eu-west-1", false},
		{"map ANDs fields both", "eventName: StopLogging\n    awsRegion: us-east-1", true},
		{"list of maps ORs", "- eventName: X\n    - awsRegion: us-east-1", true},
		{"list of maps none", "- eventName: X\n    - awsRegion: eu-west-1", false},
		{"keywords", "- 'nothing'\n    - '*Alice*'", true},
		{"keywords none", "- 'nothing'\n    - 'Bob'", false},
	}
	r := mustRecord(t, rec)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ru := mustParse(t, rule("  sel:\n    "+c.sel+"\n  condition: sel\n"))
			if got := ru.Match(r); got != c.want {
				t.Errorf("%s: got %v, want %v", c.sel, got, c.want)
			}
		})
	}
}

// TestConditions covers each condition form over four selections of which
// a and c1 match.
func TestConditions(t *testing.T) {
	det := `  a:
    eventName: StopLogging
  b:
    eventName: DeleteTrail
  c1:
    awsRegion: us-east-1
  c2:
    awsRegion: eu-west-1
  _filter:
    userIdentity.type: IAMUser
`
	cases := []struct {
		cond string
		want bool
	}{
		{"a", true},
		{"b", false},
		{"a and c1", true},
		{"a and b", false},
		{"a or b", true},
		{"b or c2", false},
		{"not b", true},
		{"not a", false},
		{"a and not b", true},
		{"not not a", true},
		{"b or a and c1", true},    // and binds tighter
		{"(b or a) and c2", false}, // parentheses
		{"b or (a and c2)", false},
		{"((a))", true},
		{"1 of c*", true},
		{"all of c*", false},
		{"all of c1", true},
		{"any of c*", true},
		{"2 of them", true},
		{"3 of them", false},
		{"1 of them", true},
		{"all of them", false},
		{"all of a", true},
		{"1 of them and not _filter", false},
		{"1 of c* and not 1 of b", true},
		{"A AND C1", false}, // selection names are case-sensitive
	}
	r := mustRecord(t, rec)
	for _, c := range cases {
		t.Run(c.cond, func(t *testing.T) {
			ru, err := Parse("t.yml", []byte(rule(det+"  condition: "+c.cond+"\n")))
			if c.cond == "A AND C1" {
				if err == nil {
					t.Fatal("unknown selection A loaded")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := ru.Match(r); got != c.want {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
	// A list of conditions is their OR.
	ru := mustParse(t, rule(det+"  condition:\n    - b\n    - a\n"))
	if !ru.Match(r) {
		t.Error("condition list is not an OR")
	}
}

// TestRefused: each rule cairn cannot run is refused with the file, the
// line of the cause and a reason naming it.
func TestRefused(t *testing.T) {
	cases := []struct {
		name, src string
		line      int
		reason    string
	}{
		{"other product", strings.Replace(rule("  s:\n    a: b\n  condition: s\n"), "product: aws", "product: windows", 1), 5, "logsource"},
		{"category", strings.Replace(rule("  s:\n    a: b\n  condition: s\n"), "service: cloudtrail", "category: process_creation", 1), 6, "category"},
		{"no logsource", "title: t\ndetection:\n  s:\n    a: b\n  condition: s\n", 1, "logsource"},
		{"no detection", "title: t\nlogsource:\n  product: aws\n  service: cloudtrail\n", 1, "detection"},
		{"no title", "logsource:\n  product: aws\n  service: cloudtrail\ndetection:\n  s:\n    a: b\n  condition: s\n", 1, "title"},
		{"aggregation", rule("  s:\n    a: b\n  condition: s | count() by userIdentity.arn > 10\n"), 10, "aggregation"},
		{"timeframe", rule("  s:\n    a: b\n  timeframe: 5m\n  condition: s\n"), 10, "timeframe"},
		{"correlation", "title: t\ncorrelation:\n  type: event_count\n", 2, "correlation"},
		{"unknown modifier", rule("  s:\n    a|frobnicate: b\n  condition: s\n"), 9, "unknown modifier"},
		{"utf16 modifier", rule("  s:\n    a|utf16le|base64: b\n  condition: s\n"), 9, "utf16le"},
		{"fieldref with base64", rule("  s:\n    a|fieldref|base64: b\n  condition: s\n"), 9, "fieldref cannot be combined"},
		{"fieldref with re", rule("  s:\n    a|fieldref|re: b\n  condition: s\n"), 9, "cannot be combined"},
		{"bad regexp", rule("  s:\n    a|re: '(?<=x)'\n  condition: s\n"), 9, "regular expression"},
		{"bad cidr", rule("  s:\n    a|cidr: 10.0.0.0/99\n  condition: s\n"), 9, "CIDR"},
		{"exists not bool", rule("  s:\n    a|exists: yes please\n  condition: s\n"), 9, "exists"},
		{"re with contains", rule("  s:\n    a|contains|re: x\n  condition: s\n"), 9, "cannot be combined"},
		{"unknown selection", rule("  s:\n    a: b\n  condition: s and t\n"), 10, "unknown selection"},
		{"of no match", rule("  s:\n    a: b\n  condition: 1 of x*\n"), 10, "matches no selection"},
		{"unbalanced", rule("  s:\n    a: b\n  condition: (s\n"), 10, "missing )"},
		{"dangling and", rule("  s:\n    a: b\n  condition: s and\n"), 10, "end of condition"},
		{"no condition", rule("  s:\n    a: b\n"), 8, "no condition"},
		{"malformed yaml", "title: [\n", 1, "malformed YAML"},
		{"two documents", rule("  s:\n    a: b\n  condition: s\n") + "---\ntitle: u\n", 11, "more than one"},
		{"nested value", rule("  s:\n    a:\n      b: c\n  condition: s\n"), 10, "scalar"},
		{"empty list", rule("  s:\n    a: []\n  condition: s\n"), 9, "empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("rules/x.yml", []byte(c.src))
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("got %v, want a *LoadError", err)
			}
			if le.File != "rules/x.yml" || le.Line != c.line || !strings.Contains(le.Reason, c.reason) {
				t.Errorf("got %q (line %d), want line %d and %q", err, le.Line, c.line, c.reason)
			}
		})
	}
}

func TestLoadKeepsGoodRules(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) {
		t.Helper()
		if err := writeFile(dir+"/"+name, src); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yml", rule("  s:\n    eventName: StopLogging\n  condition: s\n"))
	write("b.yml", rule("  s:\n    a|nope: b\n  condition: s\n"))
	write("sub/c.yaml", rule("  s:\n    eventName: DeleteTrail\n  condition: s\n"))
	write("d.yml", "title: [")
	write("README.md", "not a rule")
	rules, errs := Load(Config{}, dir)
	if len(rules) != 2 || len(errs) != 2 {
		t.Fatalf("loaded %d, refused %v", len(rules), errs)
	}
	for _, e := range errs {
		if !strings.Contains(e.Error(), "b.yml:9:") && !strings.Contains(e.Error(), "d.yml:") {
			t.Errorf("refusal without file and line: %v", e)
		}
	}
	// Bounds: a file over the size limit and a folder over the rule count.
	rules, errs = Load(Config{MaxRuleBytes: 64}, dir)
	if len(rules) != 0 || len(errs) != 4 || !strings.Contains(fmt.Sprint(errs), "larger than 64 bytes") {
		t.Errorf("size limit: loaded %d, refused %v", len(rules), errs)
	}
	rules, errs = Load(Config{MaxRules: 1}, dir)
	if len(rules) != 1 || !strings.Contains(fmt.Sprint(errs), "more than 1 rules") {
		t.Errorf("count limit: loaded %d, refused %v", len(rules), errs)
	}
}

func TestMetadata(t *testing.T) {
	r := mustParse(t, `title: Stop logging
id: 4db60cc0-36fb-42b7-9b58-a5b53019fb74
status: experimental
level: high
description: d
tags: [attack.defense-evasion, attack.t1562.008]
falsepositives: Valid change
logsource: {product: aws, service: cloudtrail}
detection:
  s: {eventName: StopLogging}
  condition: s
`)
	if r.Title != "Stop logging" || r.ID != "4db60cc0-36fb-42b7-9b58-a5b53019fb74" || r.Status != "experimental" ||
		r.Level != "high" || len(r.Tags) != 2 || r.Tags[1] != "attack.t1562.008" || len(r.FalsePositives) != 1 {
		t.Errorf("metadata: %+v", r)
	}
}

// TestEscapes follows the specification's escaping: \* and \? are the
// literal characters, \\ is one backslash, and a backslash before any
// other character is itself.
func TestEscapes(t *testing.T) {
	r := mustRecord(t, `{"a":"C:\\Windows\\System32","b":"what?*","c":"x\\yz"}`)
	cases := []struct {
		sel  string
		want bool
	}{
		{`a: 'C:\Windows\System32'`, true},
		{`a: 'C:\\Windows\\System32'`, true},
		{`a: 'c:\windows\*'`, false}, // \* is a literal star
		{`a: 'C:\Windows\\*'`, true},
		{`b: 'what\?\*'`, true},
		{`b: 'what\?\?'`, false},
		{`b: 'what??'`, true},
		{`c: 'x\\*'`, true},
		{`c: 'x\*'`, false},
	}
	for _, c := range cases {
		ru := mustParse(t, rule("  sel:\n    "+c.sel+"\n  condition: sel\n"))
		if got := ru.Match(r); got != c.want {
			t.Errorf("%s: got %v, want %v", c.sel, got, c.want)
		}
	}
}

// TestPathThroughArrays: a dotted path crosses arrays of objects
// (PutEventSelectors' eventSelectors, AuthorizeSecurityGroupIngress'
// ipPermissions.items); it matches when any element's value matches.
func TestPathThroughArrays(t *testing.T) {
	const js = `{"requestParameters":{"eventSelectors":[{"readWriteType":"All","includeManagementEvents":true},
{"readWriteType":"ReadOnly","includeManagementEvents":false,"dataResources":[{"type":"AWS::S3::Object","values":["arn:aws:s3"]}]}],
"ipPermissions":{"items":[{"ipRanges":{"items":[{"cidrIp":"10.0.0.0/8"},{"cidrIp":"0.0.0.0/0"}]}}]},"empty":[]}}`
	r := mustRecord(t, js)
	cases := []struct {
		sel  string
		want bool
	}{
		{`requestParameters.eventSelectors.readWriteType: ReadOnly`, true},
		{`requestParameters.eventSelectors.readWriteType: WriteOnly`, false},
		{`requestParameters.eventSelectors.includeManagementEvents: false`, true},
		{`requestParameters.eventSelectors.dataResources.type: 'AWS::S3::Object'`, true},
		{`requestParameters.eventSelectors.dataResources.values|startswith: 'arn:aws:s3'`, true},
		{`requestParameters.eventSelectors.dataResources.type: 'AWS::Lambda::Function'`, false},
		{`requestParameters.ipPermissions.items.ipRanges.items.cidrIp|endswith: '/0'`, true},
		{`requestParameters.ipPermissions.items.ipRanges.items.cidrIp: '192.168.*'`, false},
		{`requestParameters.eventSelectors.nope|exists: true`, false},
		{`requestParameters.eventSelectors.readWriteType|exists: true`, true},
		{`requestParameters.empty.x|exists: false`, true},
		{`requestParameters.eventSelectors.nope: null`, true},
	}
	for _, c := range cases {
		r0 := mustParse(t, rule("  sel:\n    "+c.sel+"\n  condition: sel\n"))
		if got := r0.Match(r); got != c.want {
			t.Errorf("%s: Match = %v; want %v", c.sel, got, c.want)
		}
	}
}

// TestPrefilter: the eventNames a rule needs (EventNames) are exact, and
// RunBatch, which skips or decodes in brief the records no rule may match
// by eventName, finds what Run finds, for each form of condition.
func TestPrefilter(t *testing.T) {
	recs := []string{
		`{"eventName":"StopLogging","eventSource":"cloudtrail.amazonaws.com","eventTime":"2024-01-01T00:00:00Z","eventID":"1","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::1:user/a"},"requestParameters":{"name":"t"}}`,
		`{"eventName":"DeleteTrail","eventSource":"cloudtrail.amazonaws.com","eventTime":"2024-01-01T00:00:01Z","eventID":"2","userIdentity":{"type":"Root","arn":"arn:aws:iam::1:root"},"requestParameters":{"name":"t"}}`,
		`{"eventName":"ListBuckets","eventSource":"s3.amazonaws.com","eventTime":"2024-01-01T00:00:02Z","eventID":"3","userIdentity":{"type":"Root","arn":"arn:aws:iam::1:root"},"requestParameters":{"name":"x"}}`,
		`{"eventName":"GetObject","eventSource":"s3.amazonaws.com","eventTime":"2024-01-01T00:00:03Z","eventID":"4","userIdentity":{"type":"IAMUser"},"requestParameters":{"name":"StopLogging"}}`,
		// hostile shapes: the brief decoding fails on them and falls back
		`{"eventName":"StopLogging","eventTime":7,"eventID":["5"],"userIdentity":"Root","readOnly":"maybe","errorCode":{"x":1}}`,
		`{"eventName":"ListBuckets","eventID":"6","userIdentity":{"type":["Root"],"sessionContext":[]},"sourceIPAddress":null}`,
		`{"eventName":"DeleteTrail","eventID":"7","userIdentity":{"type":"Root"},"requestParameters":null}`,
	}
	cases := []struct {
		name, det string
		names     string // sorted, comma-separated; "*" for any
	}{
		{"one name", "  s:\n    eventName: StopLogging\n  condition: s\n", "stoplogging"},
		{"name list", "  s:\n    eventName: [StopLogging, DeleteTrail]\n  condition: s\n", "deletetrail,stoplogging"},
		{"prefix", "  s:\n    eventName|startswith: Stop\n  condition: s\n", "*"},
		{"wildcard", "  s:\n    eventName: 'Stop*'\n  condition: s\n", "*"},
		{"keywords", "  s:\n    - StopLogging\n  condition: s\n", "*"},
		{"and not", "  s:\n    eventName: StopLogging\n  f:\n    userIdentity.type: Root\n  condition: s and not f\n", "stoplogging"},
		{"not", "  s:\n    eventName: StopLogging\n  condition: not s\n", "*"},
		{"or both named", "  a:\n    eventName: StopLogging\n  b:\n    eventName: DeleteTrail\n  condition: a or b\n", "deletetrail,stoplogging"},
		{"or one unnamed", "  a:\n    eventName: StopLogging\n  b:\n    userIdentity.type: Root\n  condition: a or b\n", "*"},
		{"1 of", "  sel_a:\n    eventName: StopLogging\n  sel_b:\n    eventName: ListBuckets\n  condition: 1 of sel_*\n", "listbuckets,stoplogging"},
		{"all of them, one named", "  a:\n    eventName: DeleteTrail\n  b:\n    userIdentity.type: Root\n  condition: all of them\n", "deletetrail"},
		{"list of maps, one unnamed", "  s:\n    - eventName: StopLogging\n    - requestParameters.name: x\n  condition: s\n", "*"},
		{"list of maps, all named", "  s:\n    - eventName: StopLogging\n    - eventName: ListBuckets\n      userIdentity.type: Root\n  condition: s\n", "listbuckets,stoplogging"},
		{"brief fields only", "  s:\n    userIdentity.type: Root\n  condition: s\n", "*"},
		{"cased", "  s:\n    eventName|cased: StopLogging\n  condition: s\n", "stoplogging"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := mustParse(t, rule(c.det))
			m, ok := r.EventNames()
			got := "*"
			if ok {
				ns := slices.Clone(m)
				sort.Strings(ns)
				got = strings.Join(ns, ",")
			}
			if got != c.names {
				t.Errorf("EventNames = %s; want %s", got, c.names)
			}
			var want, batched []string
			h := Hunt{Rules: []*Rule{r}}
			var in []Input
			for _, js := range recs {
				rec := mustRecord(t, js)
				h.Run(rec, func(f Finding) { want = append(want, f.EventID) })
				in = append(in, Input{Raw: []byte(js), EventName: rec.Str("eventName")})
			}
			h.RunBatch(in, 2, func(f Finding) { batched = append(batched, f.EventID) })
			if fmt.Sprint(want) != fmt.Sprint(batched) {
				t.Errorf("Run found %v, RunBatch %v", want, batched)
			}
		})
	}
}
