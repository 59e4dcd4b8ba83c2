package duckdb

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

func TestFieldsRoundTrip(t *testing.T) {
	for _, r := range []audit.Record{
		{Raw: []byte(`{}`)},
		{Raw: []byte(`{"eventVersion":"1.08"}`), EventName: "GetObject", EventSource: "s3.amazonaws.com", Username: "alice",
			AccessKeyID: "AKIA", ReadOnly: audit.True,
			Resources: []audit.Resource{{Type: "AWS::S3::Bucket", Name: "b"}, {Type: "AWS::S3::Object", ARN: "arn:aws:s3:::b/k"}}},
		{Raw: []byte("x"), EventName: string(make([]byte, 300)), ReadOnly: audit.False},
	} {
		content := frameContent(nil, &r)
		var got audit.Record
		if err := splitFields(content, &got); err != nil {
			t.Fatalf("%+v: %v", r, err)
		}
		if diff := cmp.Diff(r, got, storetest.EquateRecords); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	}
}

// FuzzSplitFields: a damaged frame content is an error, never a panic,
// and what splits appends back to the same bytes.
func FuzzSplitFields(f *testing.F) {
	r := audit.Record{Raw: []byte(`{"a":1}`), EventName: "E", Resources: []audit.Resource{{Type: "T", Name: "N", ARN: "A"}}}
	f.Add(frameContent(nil, &r))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 200, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, content []byte) {
		var got audit.Record
		if err := splitFields(content, &got); err != nil {
			return
		}
		again := frameContent(nil, &got)
		var back audit.Record
		if err := splitFields(again, &back); err != nil {
			t.Fatalf("re-encoded fields do not split: %v", err)
		}
		if diff := cmp.Diff(got, back, storetest.EquateRecords); diff != "" {
			t.Errorf("re-encoded (-first +second):\n%s", diff)
		}
	})
}
