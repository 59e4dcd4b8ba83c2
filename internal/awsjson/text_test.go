package awsjson

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestCheckText is item 12 of issue 11: request JSON must be text.
func TestCheckText(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       string // "" for accepted, else part of the message
	}{
		{"empty", ``, ""},
		{"plain", `{"TrailName":"t","Tags":{"k":"v"}}`, ""},
		{"utf-8", `{"AttributeValue":"über 日本 🎉"}`, ""},
		{"escaped pair", `{"a":"\ud83c\udf89"}`, ""},
		{"escaped uppercase pair", `{"a":"\uD83C\uDF89"}`, ""},
		{"escaped controls", `{"a":"\u0001\t\n\"\\\/"}`, ""},
		{"replacement char sent as such", `{"a":"\ufffd �"}`, ""},
		{"backslash then u in a string", `{"a":"\\u0000"}`, ""},
		{"invalid byte", "{\"a\":\"\xff\"}", "not valid UTF-8 (at byte offset 6)"},
		{"truncated sequence", "{\"a\":\"\xe6\x97\"}", "not valid UTF-8"},
		{"overlong", "{\"a\":\"\xc0\xaf\"}", "not valid UTF-8"},
		{"utf-16 surrogate as utf-8", "{\"a\":\"\xed\xa0\x80\"}", "not valid UTF-8"},
		{"invalid byte in a member name", "{\"\xfe\":1}", "not valid UTF-8"},
		{"invalid byte outside strings", "{\"a\":1}\xff", "not valid UTF-8"},
		{"escaped nul", `{"TrailName":"a\u0000b"}`, "NUL character (at byte offset 15)"},
		{"escaped nul uppercase", `{"a":"\u0000"}`, "NUL"},
		{"escaped nul in a member name", `{"a\u0000":"b"}`, "NUL"},
		{"escaped nul in a list", `{"a":["x","\u0000"]}`, "NUL"},
		{"raw nul in a string", "{\"a\":\"x\x00\"}", "NUL"},
		{"raw nul outside strings", "{\"a\":1}\x00", "NUL"},
		{"lone high surrogate", `{"a":"\ud800"}`, "unpaired"},
		{"lone high surrogate then text", `{"a":"\ud800abcdef"}`, "unpaired"},
		{"high then high", `{"a":"\ud800\ud800"}`, "unpaired"},
		{"lone low surrogate", `{"a":"\udc00"}`, "unpaired"},
		{"high at the end", `{"a":"\ud800`, "unpaired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckText([]byte(tc.body))
			if tc.want == "" {
				if err != nil {
					t.Errorf("CheckText(%q) = %v; want nil", tc.body, err)
				}
				return
			}
			e, ok := err.(*Error)
			if !ok || e.Code != CodeSerialization || e.HTTPStatus() != 400 || !strings.Contains(e.Message, tc.want) {
				t.Errorf("CheckText(%q) = %v; want SerializationException containing %q", tc.body, err, tc.want)
			}
			// Decode refuses it the same way.
			var v map[string]any
			if err := Decode([]byte(tc.body), &v); err == nil {
				t.Errorf("Decode(%q) = nil; want an error", tc.body)
			}
		})
	}
}

// noNUL reports whether every string and member name in v is valid
// UTF-8 without NUL.
func noNUL(v any) bool {
	switch v := v.(type) {
	case string:
		return utf8.ValidString(v) && !strings.ContainsRune(v, 0)
	case []any:
		for _, x := range v {
			if !noNUL(x) {
				return false
			}
		}
	case map[string]any:
		for k, x := range v {
			if !noNUL(k) || !noNUL(x) {
				return false
			}
		}
	}
	return true
}

// FuzzCheckText: what CheckText passes decodes to strings without NUL and
// with every U+FFFD one the client sent (none made up for bad input).
func FuzzCheckText(f *testing.F) {
	for _, s := range []string{`{"a":"\ud83c\udf89"}`, `{"a":"\u0000"}`, "{\"a\":\"\xff\"}", `{"a":"\\u0000"}`, `{"a":"\ud800\u0041"}`, `{"\u00e9":"\"\\"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if CheckText(b) != nil {
			return
		}
		var v any
		if json.Unmarshal(b, &v) != nil {
			return
		}
		if !noNUL(v) {
			t.Errorf("CheckText(%q) = nil, but it decodes to a NUL", b)
		}
		out, _ := json.Marshal(v)
		if got, sent := strings.Count(string(out), "\ufffd"), strings.Count(strings.ToLower(string(b)), `\ufffd`)+strings.Count(string(b), "\ufffd"); got > sent {
			t.Errorf("CheckText(%q) = nil, but it decodes to %d U+FFFD; %d were sent", b, got, sent)
		}
	})
}
