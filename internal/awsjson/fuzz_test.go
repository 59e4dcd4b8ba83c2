package awsjson

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		``,
		`{}`,
		`{"LookupAttributes":[{"AttributeKey":"EventName","AttributeValue":"ConsoleLogin"}],"StartTime":1700000000,"EndTime":1700000000.5,"MaxResults":5,"NextToken":"t"}`,
		`{"StartTime":"2024-01-01T00:00:00Z","EndTime":-1.5e3}`,
		`{"Tags":{"k":"v"},"Blob":"aGk=","Any":[1,{"a":null}],"Enabled":true,"Count":-1,"Ratio":1e-3}`,
		`{"MaxResults":"5"}`,
		`{"LookupAttributes":{}}`,
		`[`,
		`{"a":` + strings.Repeat("[", 40),
		`{} {}`,
		"{\"NextToken\":\"\xff\"}",
		`{"NextToken":"a\u0000"}`,
		`{"NextToken":"\ud800"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var v input
		err := Decode(b, &v)
		if err == nil {
			if !utf8.Valid(b) || bytes.IndexByte(b, 0) >= 0 || v.NextToken != nil && strings.ContainsRune(*v.NextToken, 0) {
				t.Errorf("Decode(%q) = nil; want invalid UTF-8 and NUL refused", b)
			}
			return
		}
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeSerialization || e.HTTPStatus() != 400 || e.Message == "" {
			t.Errorf("Decode(%q) = %#v; want a SerializationException *Error", b, err)
		}
	})
}

func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{
		"com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
		"CloudTrail_20131101.LookupEvents",
		"LookupEvents",
		"a..b",
		".",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, op, ok := ParseTarget(s)
		if !ok {
			if p != "" || op != "" {
				t.Errorf("ParseTarget(%q) = %q, %q, false; want empty parts", s, p, op)
			}
			return
		}
		if !validName(p) || !validName(op) || !strings.HasSuffix(s, "."+op) || !strings.HasSuffix(strings.TrimSuffix(s, "."+op), p) {
			t.Errorf("ParseTarget(%q) = %q, %q, true", s, p, op)
		}
	})
}

func FuzzTimestamp(f *testing.F) {
	for _, s := range []string{`1441139757.497`, `"2015-09-01T20:35:57Z"`, `-1.5`, `1e400`, `"x"`, `true`,
		`"0000-01-01T0:00Z"`, `"9999-12-31T23:59:59-01:00"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var ts Timestamp
		if err := ts.UnmarshalJSON(b); err != nil {
			return
		}
		out, err := ts.MarshalJSON()
		if err != nil {
			t.Fatalf("MarshalJSON(%v) = %v", ts.Time(), err)
		}
		var back Timestamp
		if err := back.UnmarshalJSON(out); err != nil || !back.Time().Equal(ts.Time()) {
			t.Errorf("round trip of %q: %s gives %v, %v; want %v", b, out, back.Time(), err, ts.Time())
		}
	})
}
