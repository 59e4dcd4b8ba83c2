package detect

import (
	"reflect"
	"testing"

	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/sigma"
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

// TestDecodeLikeSigma: decodeRecord gives what sigma.DecodeRecord gives
// (or fails where it fails) on every real record and on hostile JSON.
func TestDecodeLikeSigma(t *testing.T) {
	n := 0
	for _, r := range audittest.RealRecords(t) {
		checkDecode(t, r.Raw)
		n++
	}
	for _, s := range decodeSeeds {
		checkDecode(t, []byte(s))
	}
	if n < 1000 {
		t.Errorf("%d real records", n)
	}
}

func checkDecode(t *testing.T, b []byte) {
	t.Helper()
	want, werr := sigma.DecodeRecord(b)
	got, gerr := decodeRecord(b, nil)
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("%q: decodeRecord error %v; sigma.DecodeRecord error %v", b, gerr, werr)
	}
	if werr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: decodeRecord = %#v; sigma.DecodeRecord = %#v", b, got, want)
	}
	if werr != nil || want == nil {
		return
	}
	// Decoding some members only gives those members of the whole.
	for _, fields := range []fieldSet{{}, {"eventName": true}, {"userIdentity": true, "requestParameters": true, "a": true},
		{"s": true, "arr": true, "n": true}} {
		cut := sigma.Record{}
		for k := range fields {
			if v, ok := want[k]; ok {
				cut[k] = v
			}
		}
		got, err := decodeRecord(b, fields)
		if err != nil || !reflect.DeepEqual(got, cut) {
			t.Fatalf("%q: decodeRecord with fields %v = %#v, %v; want %#v", b, fields, got, err, cut)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkDecode(t, b) })
}

// BenchmarkDecode compares decodeRecord with sigma.DecodeRecord over the
// real records.
func BenchmarkDecode(b *testing.B) {
	var raws [][]byte
	for _, r := range audittest.RealRecords(b) {
		raws = append(raws, r.Raw)
	}
	for name, dec := range map[string]func([]byte) (sigma.Record, error){
		"detect": func(b []byte) (sigma.Record, error) { return decodeRecord(b, nil) },
		"detect-eventName": func(b []byte) (sigma.Record, error) {
			return decodeRecord(b, fieldSet{"eventName": true, "userIdentity": true})
		},
		"sigma": sigma.DecodeRecord} {
		b.Run(name, func(b *testing.B) {
			n := 0
			for b.Loop() {
				dec(raws[n%len(raws)])
				n++
			}
		})
	}
}
