package sigma

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: any rule text is loaded or refused with a *LoadError, never a
// panic, and a loaded rule evaluates any record without panicking.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/rules/*.yml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(rule("  s:\n    a|base64offset|contains: x\n    b|windash: -x\n  condition: 1 of them\n")))
	f.Add([]byte(rule("  s:\n    - a\n    - b: [1, null, true]\n  condition: not s\n")))
	f.Add([]byte("title: [\n"))
	recs := []Record{mustRecord(f, rec), {}, {"a": []any{map[string]any{"b": nil}}}}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse("f.yml", data)
		if err != nil {
			var le *LoadError
			if !errors.As(err, &le) || le.Reason == "" {
				t.Fatalf("refusal without reason: %v", err)
			}
			return
		}
		for _, x := range recs {
			r.Match(x)
		}
	})
}

// FuzzCondition: any condition over selections a, b, c_1, c_2, _f parses
// or is refused, never panics, and a parsed one evaluates.
func FuzzCondition(f *testing.F) {
	for _, s := range []string{"a", "a and not b", "(a or b) and 1 of c_*", "all of them", "2 of them",
		"not (not (a))", "a | count() > 5", "1 of", "((((", "a and", "any of c_* or _f"} {
		f.Add(s)
	}
	names := []string{"a", "b", "c_1", "c_2", "_f"}
	idx := map[string]int{}
	sels := make([]selection, len(names))
	for i, n := range names {
		idx[n] = i
		sels[i] = selection{name: n, alts: [][]fieldMatch{{{path: []string{"eventName"}, values: []valueMatcher{&strMatch{kind: kEq, pat: n}}}}}}
	}
	r := mustRecord(f, rec)
	f.Fuzz(func(t *testing.T, cond string) {
		n, err := parseCondition(cond, names, idx)
		if err != nil {
			return
		}
		n.eval(sels, r)
	})
}
