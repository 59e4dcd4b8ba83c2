package journal

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cairn-audit/cairn/internal/audit"
)

// compatRecords are the records of testdata/v1.seg.
func compatRecords() []audit.Record {
	return []audit.Record{
		record(1),
		{Raw: []byte("{}")}, // zero time, no resources
		{Raw: []byte(`{"x":1}`), Account: "a", Time: time.Unix(-62135596800, 999999999).UTC(), ReadOnly: audit.False, Category: audit.CategoryOther},
		{Raw: []byte(`{"eventName":"PutObject"}`), Account: "222222222222", Region: "eu-west-1", EventID: "ü-id",
			Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), EventName: "PutObject", EventSource: "s3.amazonaws.com",
			ReadOnly: audit.Unset, Username: "bøb", Category: audit.CategoryInsight,
			Resources: []audit.Resource{{Type: "AWS::S3::Object", Name: "k", ARN: ""}}},
	}
}

// TestReplaysSegmentsOfEarlierVersions: a segment written by an earlier
// cairn (testdata/v1.seg, written by the first journal record encoding
// and ending in a torn frame, as a crash leaves it) is replayed by this
// one, every record exactly as it was appended. The file was written by
// the v1 encoder, which is gone: it is never rewritten.
func TestReplaysSegmentsOfEarlierVersions(t *testing.T) {
	golden := filepath.Join("testdata", "v1.seg")
	want := compatRecords()
	b, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "00000000000000000001.seg"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	got, st := replayAll(t, dir)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("replayed records of a v1 segment differ (-want +got):\n%s", diff)
	}
	if st.Torn == 0 {
		t.Errorf("Replay stats %+v; want the torn tail counted", st)
	}
}

// TestReplaysMixedSegments: frames of both payload versions in one segment
// (the valid frames of testdata/v1.seg, then frames this version writes)
// are replayed in order.
func TestReplaysMixedSegments(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "v1.seg"))
	if err != nil {
		t.Fatal(err)
	}
	want := compatRecords()
	seg := []byte(magic)
	r := NewReader(bytes.NewReader(b[len(magic):]))
	for range want {
		p, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		seg = appendFrame(seg, p)
	}
	for i := range want {
		seg = appendFrame(seg, encodeRecord(nil, &want[i]))
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "00000000000000000001.seg"), seg, 0o644); err != nil {
		t.Fatal(err)
	}
	got, _ := replayAll(t, dir)
	if diff := cmp.Diff(append(want, want...), got); diff != "" {
		t.Errorf("replayed records of a mixed segment differ (-want +got):\n%s", diff)
	}
}

// TestReplaysV2Frames: frames of one uncompressed record each
// (payloadV2, written before session 22), then a call's records as
// Append writes them now (payloadV3, several to a frame), in one segment
// as a crash of the earlier cairn and a restart leave them, are replayed
// in order, every record exactly as it was appended; the compressed
// frames are smaller.
func TestReplaysV2Frames(t *testing.T) {
	want := append(compatRecords(), records(0, 200)...)
	dir := t.TempDir()
	seg := []byte(magic)
	v2 := 0
	for i := range want {
		p := audit.AppendBinary([]byte{payloadV2}, &want[i])
		v2 += len(p)
		seg = appendFrame(seg, p)
	}
	if err := os.WriteFile(filepath.Join(dir, "00000000000000000001.seg"), seg, 0o644); err != nil {
		t.Fatal(err)
	}
	j, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, v3, err := j.Append(want); err != nil {
		t.Fatal(err)
	} else if v3 >= v2/2 {
		t.Errorf("Append wrote %d bytes for records of %d uncompressed", v3, v2)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	got, _ := replayAll(t, dir)
	if diff := cmp.Diff(append(want, want...), got); diff != "" {
		t.Errorf("replayed records of v2 and v3 frames differ (-want +got):\n%s", diff)
	}
}
