package apiserver

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/awsjson"
)

// sameAsDecode checks importRecordsBody against awsjson.Decode: when the
// fast reader takes a body, the general decoder takes it too and reads
// the same records.
func sameAsDecode(t *testing.T, body []byte) (fast bool) {
	t.Helper()
	got, ok := importRecordsBody(body)
	if !ok {
		return false
	}
	var in importRecordsInput
	if err := awsjson.Decode(body, &in); err != nil {
		t.Fatalf("importRecordsBody took %q, which awsjson.Decode refuses: %v", body, err)
	}
	if len(got) != len(in.Records) {
		t.Fatalf("importRecordsBody(%q) read %d records; awsjson.Decode %d", body, len(got), len(in.Records))
	}
	for i := range got {
		if !bytes.Equal(got[i], []byte(in.Records[i])) {
			t.Fatalf("importRecordsBody(%q) record %d = %q; awsjson.Decode %q", body, i, got[i], in.Records[i])
		}
	}
	return true
}

func TestImportRecordsBody(t *testing.T) {
	for _, tc := range []struct {
		body string
		fast bool
	}{
		{`{"Records":[]}`, true},
		{` { "Records" : [ "a" , "b\"c\\d\/e\b\f\n\r\t" ] } `, true},
		{`{"Records":["\u00e9\u4e2d","é中😀"]}`, true},
		{`{"Records":["{\"eventID\":\"x\"}"]}`, true},
		{`{"Records":["\ud83d\ude00"]}`, true}, // a surrogate pair
		{`{"Records":["\ud83d"]}`, false},      // half of one: the general decoder's
		{`{"Records":["\u0000"]}`, false},
		{`{"Records":["a\x01"]}`, false},
		{`{"Records":["\x"]}`, false},
		{`{"Records":["a",]}`, false},
		{`{"Records":["a"],"Records":["b"]}`, false},
		{`{"Records":["a"]}x`, false},
		{`{"records":["a"]}`, false},
		{`{"Records":[1]}`, false},
		{`{"Records":null}`, false},
		{`{"Records":["a"`, false},
		{`{"Records":["a`, false},
		{`{"Records":["a\`, false},
		{``, false},
		{`[]`, false},
		// Hostile bodies (review 12): none of them is the one-pass
		// reader's; awsjson.Decode answers each.
		{`{"Records":["\udc00\ud800"]}`, false}, // a reversed pair
		{`{"Records":["\ud800\u0041"]}`, false}, // high, then not low
		{`{"Records":["\ud800\\udc00"]}`, false},
		{`{"Records":["\udfff"]}`, false},
		{"{\"Records\":[\"a\x00\"]}", false},
		{"{\"Records\":[\"\xff\"]}", false},
		{"{\"Records\":[\"\xed\xa0\x80\"]}", false}, // a surrogate in UTF-8
		{"{\"Records\":[\"a\"]}\xc0", false},
		{`{"\u0052ecords":["a"]}`, false},
		{`{"Records":["a"],"x":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`, false},
		{`{"Records":[["a"]]}`, false},
		{`{"Records":[{"a":"b"}]}`, false},
		{`{"Records":["a",1]}`, false},
		{`{"Records":[true]}`, false},
		{`{"Records":"a"}`, false},
		{`{"Records":["a"]`, false},
		{`{"Records":`, false},
		{`{"Records":["a"],}`, false},
		{"\u00a0{\"Records\":[\"a\"]}", false}, // not JSON space
		{`{"Records":["[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["]}`, true},
		{`{"Records":["{\"recipientAccountId\":\"222222222222\",\"recipientAccountId\":\"111111111111\"}"]}`, true},
		{`{"Records":["\/\\\""]}`, true},
	} {
		if got := sameAsDecode(t, []byte(tc.body)); got != tc.fast {
			t.Errorf("importRecordsBody(%q) ok = %v; want %v", tc.body, got, tc.fast)
		}
	}
}

// The records of real CloudTrail files, sent the way `cairn import` sends
// them, are read by the fast reader, byte for byte.
func TestImportRecordsBodyReadsRealRecords(t *testing.T) {
	var recs []string
	for _, r := range audittest.RealRecords(t) {
		recs = append(recs, string(r.Raw))
	}
	// Marshal escapes <, > and & as \u003c...: the \u path is read too.
	body, err := json.Marshal(importRecordsInput{Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	if !sameAsDecode(t, body) {
		t.Fatalf("the fast reader refused a body of %d real records", len(recs))
	}
}

func FuzzImportRecordsBody(f *testing.F) {
	f.Add([]byte(`{"Records":["a","b\"c"]}`))
	f.Add([]byte(`{"Records":["\u00e9\ud83d\ude00\n"]}`))
	f.Add([]byte(` {"Records" :[ ]} `))
	// The hostile bodies of TestImportRecordsBody and
	// TestImportRecordsHostileBodies.
	for _, b := range []string{`{"Records":["\udc00\ud800"]}`, `{"Records":["\ud800\u0041"]}`, `{"Records":["\u0000"]}`,
		"{\"Records\":[\"\xff\"]}", `{"\u0052ecords":["a"]}`, `{"Records":["a"],"Records":["b"]}`, `{"Records":[1]}`,
		`{"Records":["a"`, `{"Records":["{\"recipientAccountId\":\"2\",\"recipientAccountId\":\"1\"}"]}`,
		`{"Records":["a"],"x":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`, `{"Records":null}`} {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		sameAsDecode(t, body)
	})
}
