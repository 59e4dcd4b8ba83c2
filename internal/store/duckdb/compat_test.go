package duckdb

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

// compatRecords are the records of testdata/frames-v1.hex: the fields a
// stored frame holds (Account, Region, EventID, Time and Category are
// columns).
func compatRecords() []audit.Record {
	return []audit.Record{
		{Raw: []byte(`{}`)},
		{Raw: []byte(`{"eventVersion":"1.08"}`), EventName: "GetObject", EventSource: "s3.amazonaws.com", Username: "alice",
			AccessKeyID: "AKIA", ReadOnly: audit.True,
			Resources: []audit.Resource{{Type: "AWS::S3::Bucket", Name: "b"}, {Type: "AWS::S3::Object", ARN: "arn:aws:s3:::b/k"}}},
		{Raw: []byte("x"), EventName: string(make([]byte, 300)), ReadOnly: audit.False},
		{Raw: []byte(`{"eventName":"CreateTrail","userIdentity":{"userName":"bøb"}}`), EventName: "CreateTrail",
			EventSource: "cloudtrail.amazonaws.com", Username: "bøb", ReadOnly: audit.Unset,
			Resources: []audit.Resource{{Type: "AWS::CloudTrail::Trail", Name: "t", ARN: "arn:aws:cloudtrail:us-east-1:1:trail/t"}}},
	}
}

// TestFramesOfEarlierVersions: the frame contents an earlier cairn stored
// (testdata/frames-v1.hex, one per line, written by the first field
// encoding, never rewritten) still split into the same records, and
// records are still stored as exactly those bytes (the format has not
// changed, so earlier versions read what this one stores).
func TestFramesOfEarlierVersions(t *testing.T) {
	golden := filepath.Join("testdata", "frames-v1.hex")
	want := compatRecords()
	var enc [][]byte
	for i := range want {
		enc = append(enc, frameContent(nil, &want[i]))
	}
	b, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(b))
	if len(lines) != len(want) {
		t.Fatalf("%s has %d frames; want %d", golden, len(lines), len(want))
	}
	for i, l := range lines {
		content, err := hex.DecodeString(l)
		if err != nil {
			t.Fatal(err)
		}
		var got audit.Record
		if err := splitFields(content, &got); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if diff := cmp.Diff(want[i], got, storetest.EquateRecords); diff != "" {
			t.Errorf("frame %d splits differently (-want +got):\n%s", i, diff)
		}
		if !bytes.Equal(enc[i], content) {
			t.Errorf("frame %d is now stored as\n%x\nwant (earlier versions read it)\n%x", i, enc[i], content)
		}
	}
}
