package lake

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzAppendCompact: for any JSON text encoding/json takes as valid,
// appendCompact (which skips the validation the decoder did already) gives
// json.Compact's bytes, after what b held.
func FuzzAppendCompact(f *testing.F) {
	for _, s := range []string{
		`{}`, ` { "a" : 1 } `, "{\n\t\"version\": \"1.0\",\r\n \"x\": [1, 2, {\"y\": null}]}",
		`{"s":"a \" b \\ c \\\" d"}`, `{"s":"\\\\"  ,  "t":"\\"}`, `{"u":"\u00e9 \"\u003c"}`,
		`[ true , false , -1.5e+3 ]`, `"  spaced  string  "`, `{"a":"é  x","b":[ ] , "c":{ }}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return
		}
		var want bytes.Buffer
		want.WriteString("head")
		if err := json.Compact(&want, data); err != nil {
			t.Fatal(err)
		}
		if got := appendCompact([]byte("head"), data); !bytes.Equal(got, want.Bytes()) {
			t.Errorf("appendCompact(%q) = %q; want %q", data, got, want.Bytes())
		}
	})
}
