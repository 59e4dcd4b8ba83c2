package apiserver

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/cloudtrailmodel"
)

// enumInputs returns, for every enum member reachable from op's input, a
// body giving it value (wrapping lists and structures on the way).
func enumInputs(op cloudtrailmodel.Op, value string) map[string]string {
	ct := cloudtrailmodel.CloudTrail()
	out := map[string]string{}
	var walk func(members []cloudtrailmodel.Member, path string, wrap func(any) any, depth int)
	var shape func(name, path string, wrap func(any) any, depth int)
	shape = func(name, path string, wrap func(any) any, depth int) {
		sh, ok := ct.Shape(name)
		if !ok || depth > 8 {
			return
		}
		switch sh.Type {
		case "string":
			if len(sh.Enum) > 0 {
				b, _ := json.Marshal(wrap(value))
				out[path] = string(b)
			}
		case "list":
			shape(sh.Member, path+"[]", func(v any) any { return wrap([]any{v}) }, depth+1)
		case "structure":
			walk(sh.Members, path, wrap, depth+1)
		}
	}
	walk = func(members []cloudtrailmodel.Member, path string, wrap func(any) any, depth int) {
		for _, m := range members {
			p := strings.TrimPrefix(path+"."+m.Name, ".")
			shape(m.Shape, p, func(v any) any { return wrap(map[string]any{m.Name: v}) }, depth)
		}
	}
	walk(op.Input, "", func(v any) any { return v }, 0)
	return out
}

// TestEnumsAsAClass: for every operation of the model, every enum member
// of its input (at any depth) given a value outside the enum is refused
// with an error the operation models (Coral's "failed to satisfy
// constraint: Member must satisfy enum value set" message), and a value
// of the enum passes. The members come from the botocore facts, so an
// enum the model adds is covered without a change here.
func TestEnumsAsAClass(t *testing.T) {
	n := 0
	for _, op := range cloudtrailmodel.Operations() {
		for path, body := range enumInputs(op, "NOT_A_VALUE") {
			n++
			err := checkEnums(op.Name, []byte(body))
			code := string(audit.ErrorCode(err)) + "Exception"
			if err == nil || !slices.Contains(op.Errors, code) || !strings.Contains(err.Error(), "Member must satisfy enum value set") {
				t.Errorf("%s %s %s: %v; want one of the operation's modeled errors", op.Name, path, body, err)
			}
		}
	}
	if n < 20 {
		t.Errorf("%d enum inputs in the model; want the model's 20 or more", n)
	}
	for _, c := range []struct{ op, body string }{
		{"ListQueries", `{"QueryStatus":"FINISHED"}`},
		{"ListImports", `{"ImportStatus":"COMPLETED"}`},
		{"PutEventSelectors", `{"EventSelectors":[{"ReadWriteType":"All"}]}`},
		{"LookupEvents", `{"LookupAttributes":[{"AttributeKey":"EventName","AttributeValue":"x"}]}`},
		{"ListQueries", `{"QueryStatus":7}`},     // a type error is left to decoding
		{"ListQueries", `not json`},              // so is a body that is not JSON
		{"CreateChannel", `{"Source":"Custom"}`}, // not an enum in the model
	} {
		if err := checkEnums(c.op, []byte(c.body)); err != nil {
			t.Errorf("%s %s: %v", c.op, c.body, err)
		}
	}
	for _, c := range []struct{ op, body, code string }{
		{"ListQueries", `{"QueryStatus":"DONE"}`, "InvalidQueryStatus"},
		{"ListImports", `{"ImportStatus":"DONE"}`, "InvalidParameter"},
		{"PutEventSelectors", `{"EventSelectors":[{"ReadWriteType":"Sometimes"}]}`, "InvalidEventSelectors"},
		{"LookupEvents", `{"EventCategory":"management"}`, "InvalidEventCategory"},
		{"PutInsightSelectors", `{"InsightSelectors":[{"InsightType":"x"}]}`, "InvalidInsightSelectors"},
	} {
		if got := audit.ErrorCode(checkEnums(c.op, []byte(c.body))); string(got) != c.code {
			t.Errorf("%s %s = %s; want %s", c.op, c.body, got, c.code)
		}
	}
}

// FuzzListTokens: an offset or key token is accepted only as encoded, and
// only for its own listing.
func FuzzListTokens(f *testing.F) {
	c := tokenCodec{key: []byte("k")}
	p := audit.Principal{AccountID: "111122223333", Region: "us-east-1"}
	fp := scope("ListImports", p, "store")
	other := scope("ListImports", p, "other")
	f.Add(c.encodeOffset(fp, 5))
	f.Add(c.encodeKey(fp, "arn:aws:cloudtrail:us-east-1:111122223333:trail/t"))
	f.Add("1")
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		if off, err := c.decodeOffset(fp, tok); err == nil && c.encodeOffset(fp, off) != tok {
			t.Errorf("accepted offset token %q does not round-trip", tok)
		}
		if key, err := c.decodeKey(fp, tok); err == nil && c.encodeKey(fp, key) != tok {
			t.Errorf("accepted key token %q does not round-trip", tok)
		}
		if _, err := c.decodeOffset(other, tok); err == nil {
			if _, err := c.decodeOffset(fp, tok); err == nil {
				t.Errorf("token %q accepted for two listings", tok)
			}
		}
	})
}
