package sigma

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestEventNames(t *testing.T) {
	for _, c := range []struct {
		detection string
		want      string // sorted names, or "any"
	}{
		{"  sel:\n    eventName: StopLogging\n  condition: sel\n", "stoplogging"},
		{"  sel:\n    eventName: [StopLogging, DeleteTrail]\n  condition: sel\n", "deletetrail stoplogging"},
		{"  sel:\n    eventName|cased: StopLogging\n  condition: sel\n", "stoplogging"},
		{"  sel:\n    eventName|all: [A, B]\n  condition: sel\n", "a b"},
		{"  sel:\n    eventName|startswith: Stop\n  condition: sel\n", "any"},
		{"  sel:\n    eventName: Stop*\n  condition: sel\n", "any"},
		{"  sel:\n    eventName|re: Stop.*\n  condition: sel\n", "any"},
		{"  sel:\n    eventName: null\n  condition: sel\n", "any"},
		{"  sel:\n    eventName|exists: true\n  condition: sel\n", "any"},
		{"  sel:\n    eventName: 5\n  condition: sel\n", "any"},
		{"  sel:\n    eventName|fieldref: eventSource\n  condition: sel\n", "any"},
		{"  sel:\n    eventSource: s3.amazonaws.com\n  condition: sel\n", "any"},
		{"  sel:\n    - StopLogging\n  condition: sel\n", "any"},
		{"  sel:\n    - eventName: A\n    - eventName: B\n  condition: sel\n", "a b"},
		{"  sel:\n    - eventName: A\n    - eventSource: x\n  condition: sel\n", "any"},
		{"  a:\n    eventName: A\n  b:\n    errorCode: x\n  condition: a and b\n", "a"},
		{"  a:\n    eventName: [A, B]\n  b:\n    eventName: [B, C]\n  condition: a and b\n", "b"},
		{"  a:\n    eventName: A\n  b:\n    errorCode: x\n  condition: a or b\n", "any"},
		{"  a:\n    eventName: A\n  b:\n    eventName: B\n  condition: a or b\n", "a b"},
		{"  a:\n    eventName: A\n  condition: not a\n", "any"},
		{"  a:\n    eventName: A\n  b:\n    errorCode: x\n  condition: a and not b\n", "a"},
		{"  sel_a:\n    eventName: A\n  sel_b:\n    eventName: B\n  condition: 1 of sel_*\n", "a b"},
		{"  sel_a:\n    eventName: A\n  sel_b:\n    errorCode: x\n  condition: 1 of sel_*\n", "any"},
		{"  sel_a:\n    eventName: A\n  sel_b:\n    errorCode: x\n  condition: all of sel_*\n", "a"},
		{"  sel:\n    eventName: A\n    eventName|contains: x\n  condition: sel\n", "a"},
	} {
		r := mustParse(t, rule(c.detection))
		names, ok := r.EventNames()
		slices.Sort(names)
		got := strings.Join(names, " ")
		if !ok {
			got = "any"
		}
		if got != c.want {
			t.Errorf("EventNames of\n%s= %q; want %q", c.detection, got, c.want)
		}
	}
}

// TestEventNamesAreNecessary: over every real record and every fixture rule,
// a match implies the record's eventName is in the rule's set.
func TestEventNamesAreNecessary(t *testing.T) {
	rules, errs := Load(Config{}, "testdata/rules")
	if errs != nil {
		t.Fatal(errs)
	}
	constrained := 0
	for _, r := range rules {
		if _, ok := r.EventNames(); ok {
			constrained++
		}
	}
	if constrained < 4 {
		t.Fatalf("only %d fixture rules are bounded by eventName: the test checks little", constrained)
	}
	matched := 0
	for _, raw := range realRecords(t) {
		rec, err := DecodeRecord(raw)
		if err != nil {
			continue
		}
		var v struct{ EventName string }
		_ = json.Unmarshal(raw, &v)
		for _, r := range rules {
			names, ok := r.EventNames()
			if !ok || !r.Match(rec) {
				continue
			}
			matched++
			if !slices.Contains(names, strings.ToLower(v.EventName)) {
				t.Errorf("%s matches a %s record but its event names are %v", r.File, v.EventName, names)
			}
		}
	}
	if matched == 0 {
		t.Error("no bounded rule matched a real record: the test checks nothing")
	}
}

// TestFieldsSuffice: a record cut to the members Fields names matches
// every fixture rule as the whole record does; a keyword rule reads all.
func TestFieldsSuffice(t *testing.T) {
	kw := mustParse(t, rule("  sel:\n    - evil\n  condition: sel\n"))
	if _, ok := kw.Fields(); ok {
		t.Error("a keyword rule claims to read some fields only")
	}
	ref := mustParse(t, rule("  sel:\n    userIdentity.arn|fieldref: requestParameters.roleArn\n  condition: sel\n"))
	if f, ok := ref.Fields(); !ok || strings.Join(f, ",") != "userIdentity,requestParameters" {
		t.Errorf("fieldref rule's Fields = %v, %v", f, ok)
	}
	rules, errs := Load(Config{}, "testdata/rules")
	if errs != nil {
		t.Fatal(errs)
	}
	matched := 0
	for _, raw := range realRecords(t) {
		rec, err := DecodeRecord(raw)
		if err != nil {
			continue
		}
		for _, r := range rules {
			fields, ok := r.Fields()
			if !ok {
				t.Fatalf("%s: Fields false", r.File)
			}
			cut := Record{}
			for _, f := range fields {
				if v, ok := rec[f]; ok {
					cut[f] = v
				}
			}
			want := r.Match(rec)
			if want {
				matched++
			}
			if got := r.Match(cut); got != want {
				t.Fatalf("%s on a record cut to %v: %v; on the whole record %v", r.File, fields, got, want)
			}
		}
	}
	if matched == 0 {
		t.Error("no fixture rule matched: the test checks nothing")
	}
}
