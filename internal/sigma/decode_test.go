package sigma

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/cairn-audit/cairn/internal/audit/audittest"
)

var decodeSeeds = []string{
	`{}`, ` {"a":1} `, `{"a":1,"a":{"b":2}}`, `{"a":{"x":1},"a":{"y":2}}`,
	`{"n":-0.5e+10,"m":0,"z":1E3,"big":123456789012345678901234567890}`,
	`{"s":"\u00e9\ud83d\ude00\ud800\udc00\ud800x\udc00\ud800\u0041"}`,
	"{\"bad\":\"\xff\xfe\xc3(\"}", `{"esc":"\"\\\/\b\f\n\r\t"}`,
	`{"arr":[1,[2,[3,{}]],[],null,true,false,"x"]}`, `{"a":nul}`, `{"a":01}`, `{"a":1.}`, `{"a":-}`,
	`{"a":"x`, `{"a":"\x"}`, "{\"a\":\"\x01\"}", `{"a" 1}`, `{"a":1,}`, `[1]`, `"x"`, `{"a":1} trailing`, `{"a":"\u12"}`,
	`{"a":"\ud800\u12"}`, `{"skip":{"x":["]",{"y":"\"}"}]},"s":"k","n":[1,{"z":"\\"}],"arr":-1.5e3,"a":"x\\\""}`, `{"eventName":"Stop\u004cogging","eventName":"StopLogging"}`, "\t\n{\r}",
}

// TestDecodeLikeDecodeRecord: DecodeFields gives what DecodeRecord gives
// (or fails where it fails) on every real record and on hostile JSON.
func TestDecodeLikeDecodeRecord(t *testing.T) {
	n := 0
	d := &Decoder{} // shared by every record, as a hunt's worker shares it
	for _, r := range audittest.RealRecords(t) {
		checkDecode(t, d, r.Raw)
		n++
	}
	for _, s := range decodeSeeds {
		checkDecode(t, d, []byte(s))
	}
	if n < 1000 {
		t.Errorf("%d real records", n)
	}
}

func checkDecode(t *testing.T, d *Decoder, b []byte) {
	t.Helper()
	want, werr := DecodeRecord(b)
	got, gerr := DecodeFields(b, nil)
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("%q: DecodeFields error %v; DecodeRecord error %v", b, gerr, werr)
	}
	if werr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: DecodeFields = %#v; DecodeRecord = %#v", b, got, want)
	}
	// A Decoder sharing strings across records decodes alike.
	for range 2 {
		got, gerr := d.Fields(b, nil)
		if (werr != nil) != (gerr != nil) || werr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: Decoder.Fields = %#v, %v; DecodeRecord = %#v, %v", b, got, gerr, want, werr)
		}
	}
	if werr != nil || want == nil {
		return
	}
	// Decoding some members only gives those members of the whole.
	for _, fields := range []map[string]bool{{}, {"eventName": true}, {"userIdentity": true, "requestParameters": true, "a": true},
		{"s": true, "arr": true, "n": true}} {
		cut := Record{}
		for k := range fields {
			if v, ok := want[k]; ok {
				cut[k] = v
			}
		}
		got, err := DecodeFields(b, fields)
		if err != nil || !reflect.DeepEqual(got, cut) {
			t.Fatalf("%q: DecodeFields with fields %v = %#v, %v; want %#v", b, fields, got, err, cut)
		}
	}
	// Decoding a tree of members gives the whole cut to the tree, at
	// every depth, arrays element by element.
	for _, tree := range []fieldTree{briefTree, {"a": {"x": nil, "y": {}}, "arr": {"z": nil}, "skip": {"x": nil}, "n": {"z": nil}},
		{"userIdentity": {"sessionContext": {"attributes": nil}}, "requestParameters": {"bucketName": nil, "ipPermissions": {"items": nil}}}} {
		got, err := decodeTree(b, tree)
		if want := cutTree(map[string]any(want), tree); err != nil || !reflect.DeepEqual(map[string]any(got), want) {
			t.Fatalf("%q: decodeTree with %v = %#v, %v; want %#v", b, tree, got, err, want)
		}
		got, err = d.decodeTree(b, tree)
		if want := cutTree(map[string]any(want), tree); err != nil || !reflect.DeepEqual(map[string]any(got), want) {
			t.Fatalf("%q: Decoder.decodeTree with %v = %#v, %v; want %#v", b, tree, got, err, want)
		}
	}
}

// cutTree is v with only the members of tree (DecodeFields's Record as a
// decodeTree with tree would give it).
func cutTree(v any, tree fieldTree) any {
	if tree == nil {
		return v
	}
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, sub := range tree {
			if e, ok := x[k]; ok {
				out[k] = cutTree(e, sub)
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = cutTree(e, tree)
		}
		return out
	}
	return v
}

// TestBriefOnly: a rule runs on a record decoded in brief only when every
// path it reads ends within what DecodeBrief decodes whole.
func TestBriefOnly(t *testing.T) {
	for _, c := range []struct {
		sel  string
		want bool
	}{
		{"userIdentity.type: Root", true},
		{"eventName: StopLogging\n    errorCode: AccessDenied", true},
		{"userIdentity.sessionContext.ec2RoleDelivery: '2.0'", true},
		{"sourceIPAddress|cidr: 10.0.0.0/8", true},
		{"readOnly: false\n    userIdentity.arn|endswith: ':root'", true},
		{"userIdentity.sessionContext.attributes.mfaAuthenticated: 'false'", false}, // skipped in brief
		{"userIdentity.sessionContext|exists: true", false},                         // decoded in part
		{"userIdentity: null", false},
		{"userIdentity.sessionIssuer.arn: x", false},
		{"requestParameters.name: x", false},
		{"userAgent|contains: curl", false},
		{"eventName: X\n    additionalEventData.MFAUsed: 'No'", false},
	} {
		r := mustParse(t, rule("  s:\n    "+c.sel+"\n  condition: s\n"))
		if got := r.BriefOnly(); got != c.want {
			t.Errorf("BriefOnly(%s) = %v; want %v", c.sel, got, c.want)
		}
	}
	if mustParse(t, rule("  k: [Root]\n  condition: k\n")).BriefOnly() {
		t.Error("a keyword rule runs in brief; want it to read the whole record")
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkDecode(t, &Decoder{}, b) })
}

// lastValueTrees are trees compiled as a hunt compiles them (the members
// with ids for the Decoder's last-value cache): the brief fields, what the
// test rules read, and members of the decode seeds.
func lastValueTrees(t testing.TB) []fieldTree {
	rules, errs := Load(Config{}, "testdata/rules")
	if len(errs) > 0 || len(rules) == 0 {
		t.Fatalf("test rules: %d loaded, %v", len(rules), errs)
	}
	return []fieldTree{briefTree, treeOf(rules),
		{"a": {"x": nil, "y": {}}, "arr": {"z": nil}, "s": nil, "n": nil, "eventName": nil, "bad": nil, "esc": nil}}
}

// checkCompiled decodes b with d and the compiled tree c of tree and
// checks it is DecodeRecord's record cut to tree. Where DecodeRecord
// fails, only the members decoded are checked (a skipped member is not),
// so the decode may fail or not.
func checkCompiled(t *testing.T, d *Decoder, c *ctree, tree fieldTree, b []byte) {
	t.Helper()
	want, werr := DecodeRecord(b)
	got, gerr := d.decode(b, c)
	if werr == nil && gerr != nil {
		t.Fatalf("%q: Decoder.decode error %v; DecodeRecord decodes it", b, gerr)
	}
	// and as a parser sharing nothing decodes it, hostile input included
	plain, perr := (*Decoder)(nil).decode(b, compileTree(tree, false))
	if (perr != nil) != (gerr != nil) || !reflect.DeepEqual(got, plain) {
		t.Fatalf("%q: Decoder.decode with %v = %#v, %v; without a Decoder %#v, %v", b, tree, got, gerr, plain, perr)
	}
	if werr != nil || want == nil {
		return
	}
	if cut := cutTree(map[string]any(want), tree); !reflect.DeepEqual(map[string]any(got), cut) {
		t.Fatalf("%q: Decoder.decode with %v = %#v; want %#v", b, tree, got, cut)
	}
}

// TestDecoderLastValues: a Decoder that reuses the last string value of
// each compiled member decodes every record as DecodeRecord does (cut to
// the tree), whatever records it decoded before: the real records in
// order, reversed and shuffled, with the hostile seeds among them.
func TestDecoderLastValues(t *testing.T) {
	var raws [][]byte
	for _, r := range audittest.RealRecords(t) {
		raws = append(raws, r.Raw)
	}
	for _, s := range decodeSeeds {
		raws = append(raws, []byte(s))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tree := range lastValueTrees(t) {
		c := compileTree(tree, true)
		d := &Decoder{}
		for pass := range 3 {
			order := make([]int, len(raws))
			for i := range order {
				order[i] = i
			}
			switch pass {
			case 1:
				slices.Reverse(order)
			case 2:
				rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
			}
			for _, i := range order {
				checkCompiled(t, d, c, tree, raws[i])
			}
		}
	}
}

// FuzzDecodeAfter: a record decoded after another with the same Decoder
// and compiled trees (its last-value cache primed by the first) decodes as
// DecodeRecord does, and so does the first again.
func FuzzDecodeAfter(f *testing.F) {
	for i, s := range decodeSeeds {
		f.Add([]byte(s), []byte(decodeSeeds[(i+5)%len(decodeSeeds)]))
	}
	f.Add([]byte(`{"eventName":"A","s":"x","a":{"x":"1"}}`), []byte(`{"eventName":"AB","s":"x\u0041","a":{"x":1}}`))
	trees := lastValueTrees(f)
	cs := make([]*ctree, len(trees))
	for i, tree := range trees {
		cs[i] = compileTree(tree, true)
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		d := &Decoder{}
		for i, tree := range trees {
			for _, x := range [][]byte{a, b, a, b} {
				checkCompiled(t, d, cs[i], tree, x)
			}
		}
	})
}

// BenchmarkDecode compares DecodeFields with DecodeRecord over the real
// records: whole, and in the members stateful hunts read (decodeBrief),
// paid once per record whatever the number of rules.
func BenchmarkDecode(b *testing.B) {
	raws := realRecords(b)
	for _, c := range []struct {
		name string
		dec  func([]byte) (Record, error)
	}{
		{"DecodeRecord", DecodeRecord},
		{"DecodeFields", func(b []byte) (Record, error) { return DecodeFields(b, nil) }},
		{"decodeBrief", decodeBrief},
		{"Decoder.Brief", (&Decoder{}).Brief},
	} {
		b.Run(c.name, func(b *testing.B) {
			n := 0
			for b.Loop() {
				if _, err := c.dec(raws[n%len(raws)]); err != nil {
					b.Fatal(err)
				}
				n++
			}
		})
	}
}

// TestFieldsFor: the tree decoded for some rules holds the brief fields and
// every path the rules read; a member read whole stays whole whatever
// deeper paths other rules read; keywords read the whole record.
func TestFieldsFor(t *testing.T) {
	sel := func(s string) *Rule { return mustParse(t, rule("  s:\n    "+s+"\n  condition: s\n")) }
	for _, c := range []struct {
		name  string
		rules []*Rule
		check func(fieldTree) bool
	}{
		{"none: brief", nil, func(f fieldTree) bool { return reflect.DeepEqual(f, briefTree) }},
		{"deeper then whole", []*Rule{sel("userIdentity.sessionContext.attributes.mfaAuthenticated: 'true'"), sel("userIdentity|contains: x")},
			func(f fieldTree) bool { v, ok := f["userIdentity"]; return ok && v == nil }},
		{"whole then deeper", []*Rule{sel("requestParameters.a: x"), sel("requestParameters.a.b: y")},
			func(f fieldTree) bool {
				v, ok := f["requestParameters"]["a"]
				return ok && v == nil && len(f["requestParameters"]) == 1
			}},
		{"beside brief", []*Rule{sel("userIdentity.sessionContext.attributes.mfaAuthenticated: 'true'")},
			func(f fieldTree) bool {
				sc := f["userIdentity"]["sessionContext"]
				_, a := sc["attributes"]
				_, e := sc["ec2RoleDelivery"]
				return a && e && briefTree["userIdentity"]["sessionContext"]["attributes"] == nil && len(briefTree["userIdentity"]["sessionContext"]) == 1
			}},
		{"keywords: whole", []*Rule{sel("eventName: X"), mustParse(t, rule("  k: [Root]\n  condition: k\n"))},
			func(f fieldTree) bool { return f == nil }},
	} {
		if f := FieldsFor(c.rules).tree; !c.check(f) {
			t.Errorf("%s: FieldsFor = %v", c.name, f)
		}
	}
}
