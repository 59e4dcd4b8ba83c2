package audit

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestBinaryRoundTrip(t *testing.T) {
	for _, c := range []struct {
		name    string
		r       Record
		version byte
	}{
		{"empty", Record{}, binaryV1},
		{"lookup fields only", Record{Raw: []byte(`{"eventVersion":"1.08"}`), EventName: "GetObject", EventSource: "s3.amazonaws.com",
			Username: "alice", AccessKeyID: "AKIA", ReadOnly: True,
			Resources: []Resource{{Type: "AWS::S3::Bucket", Name: "b"}, {Type: "AWS::S3::Object", ARN: "arn:aws:s3:::b/k"}}}, binaryV1},
		{"every field", Record{Raw: []byte(`{"x":1}`), Account: "111111111111", Region: "eu-west-1", EventID: "id",
			Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), EventName: "n", EventSource: "s", ReadOnly: False,
			Username: "bøb", AccessKeyID: "k", Category: CategoryData, Resources: []Resource{{Type: "T", Name: "N", ARN: "A"}}}, binaryV2},
		{"time before 1970", Record{Raw: []byte(`{}`), Time: time.Unix(-62135596800, 999999999).UTC()}, binaryV2},
		{"category only", Record{Raw: []byte(`{}`), Category: CategoryInsight}, binaryV2},
		{"account only", Record{Account: "a"}, binaryV2},
	} {
		b := AppendBinary([]byte("prefix"), &c.r)
		p := b[len("prefix"):]
		if v := p[len(p)-4-int(uint32(p[len(p)-4])|uint32(p[len(p)-3])<<8)]; v != c.version {
			t.Errorf("%s: version %d; want %d", c.name, v, c.version)
		}
		var got Record
		if err := DecodeBinary(p, &got); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !bytes.Equal(got.Raw, c.r.Raw) {
			t.Errorf("%s: Raw %q; want %q", c.name, got.Raw, c.r.Raw)
		}
		got.Raw, c.r.Raw = nil, nil
		if diff := cmp.Diff(c.r, got); diff != "" {
			t.Errorf("%s: decode(encode(r)) differs (-want +got):\n%s", c.name, diff)
		}
	}
}

// A version 1 encoding leaves the fields it does not hold as they are (the
// store sets them from its columns first); version 2 sets every field.
func TestDecodeBinaryV1KeepsColumns(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := Record{Account: "acct", Region: "r", EventID: "id", Time: at, Category: CategoryData, EventName: "old", Username: "old"}
	if err := DecodeBinary(AppendBinary(nil, &Record{Raw: []byte("{}"), EventName: "new"}), &r); err != nil {
		t.Fatal(err)
	}
	want := Record{Raw: []byte("{}"), Account: "acct", Region: "r", EventID: "id", Time: at, Category: CategoryData, EventName: "new"}
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("v1 decode into a filled record (-want +got):\n%s", diff)
	}
	r = Record{Account: "acct", Region: "r"}
	if err := DecodeBinary(AppendBinary(nil, &Record{Raw: []byte("{}"), EventID: "x"}), &r); err != nil {
		t.Fatal(err)
	}
	if r.Account != "" || r.Region != "" || r.EventID != "x" {
		t.Errorf("v2 decode kept %+v; want every field from the encoding", r)
	}
}

func TestDecodeBinaryRefusesDamage(t *testing.T) {
	good := AppendBinary(nil, &Record{Raw: []byte(`{"a":1}`), EventName: "E", Account: "a", Resources: []Resource{{Type: "T"}}})
	for name, p := range map[string][]byte{
		"empty":          nil,
		"short":          {1, 0, 0},
		"length 0":       {0, 0, 0, 0},
		"length too big": {1, 0xff, 0, 0, 0},
		"version 0":      {0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0},
		"version 3":      {3, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0},
		"cut":            append(append([]byte{}, good[:len(good)-6]...), good[len(good)-4:]...),
		"trailing bytes": func() []byte { // one byte more inside the fields
			b := append([]byte{}, good[:len(good)-4]...)
			n := int(good[len(good)-4]) + 1
			return append(append(b, 0), byte(n), 0, 0, 0)
		}(),
	} {
		r := Record{EventName: "kept"}
		if err := DecodeBinary(p, &r); !errors.Is(err, ErrBinary) {
			t.Errorf("%s: DecodeBinary = %v; want ErrBinary", name, err)
		}
		if r.EventName != "kept" {
			t.Errorf("%s: a failed decode changed the record", name)
		}
	}
}

// FuzzDecodeBinary: damaged bytes are an error, never a panic, and what
// decodes encodes back to a record that decodes the same.
func FuzzDecodeBinary(f *testing.F) {
	f.Add(AppendBinary(nil, &Record{Raw: []byte(`{"a":1}`), EventName: "E", Resources: []Resource{{Type: "T", Name: "N", ARN: "A"}}}))
	f.Add(AppendBinary(nil, &Record{Raw: []byte(`{}`), Account: "a", Time: time.Unix(1, 2)}))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, p []byte) {
		var got Record
		if err := DecodeBinary(p, &got); err != nil {
			return
		}
		var back Record
		if err := DecodeBinary(AppendBinary(nil, &got), &back); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if diff := cmp.Diff(got, back); diff != "" {
			t.Errorf("re-encoded (-first +second):\n%s", diff)
		}
	})
}

// TestSplitBinary: SplitBinary gives DecodeBinary's Raw and EventName, in
// both versions, and refuses what it reads of damaged bytes.
func TestSplitBinary(t *testing.T) {
	for _, r := range []Record{
		{},
		{Raw: []byte(`{"eventName":"GetObject"}`), EventName: "GetObject", EventSource: "s3.amazonaws.com", Resources: []Resource{{Type: "T"}}},
		{Raw: []byte(`{"x":1}`), EventName: "ConsoleLogin", Account: "111111111111", Time: time.Unix(5, 0)},
		{Raw: []byte(`{}`), EventName: "bøb"},
	} {
		p := AppendBinary(nil, &r)
		var want Record
		if err := DecodeBinary(p, &want); err != nil {
			t.Fatal(err)
		}
		raw, name, err := SplitBinary(p)
		if err != nil {
			t.Fatalf("%q: %v", r.Raw, err)
		}
		if !bytes.Equal(raw, want.Raw) || string(name) != want.EventName {
			t.Errorf("SplitBinary = %q, %q; want %q, %q", raw, name, want.Raw, want.EventName)
		}
		if cap(raw) != len(raw) || cap(name) != len(name) {
			t.Errorf("SplitBinary: raw or name not capped")
		}
		// Every cut of the bytes is an error or a Raw and name inside them.
		for i := range len(p) {
			if raw, name, err := SplitBinary(p[:i]); err == nil && len(raw)+len(name) > i {
				t.Errorf("cut at %d: %d bytes returned", i, len(raw)+len(name))
			} else if err != nil && !errors.Is(err, ErrBinary) {
				t.Errorf("cut at %d: %v; want ErrBinary", i, err)
			}
		}
	}
	for name, p := range map[string][]byte{
		"empty":           nil,
		"length 0":        {0, 0, 0, 0},
		"length too big":  {1, 0xff, 0, 0, 0},
		"version 3":       {3, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0},
		"name past end":   {1, 9, 'a', 3, 0, 0, 0},
		"varint past end": {1, 0x80, 2, 0, 0, 0},
	} {
		if _, _, err := SplitBinary(p); !errors.Is(err, ErrBinary) {
			t.Errorf("%s: SplitBinary = %v; want ErrBinary", name, err)
		}
	}
}

// FuzzSplitBinary: never a panic, and on bytes DecodeBinary takes the same
// Raw and EventName.
func FuzzSplitBinary(f *testing.F) {
	f.Add(AppendBinary(nil, &Record{Raw: []byte(`{"a":1}`), EventName: "E"}))
	f.Add([]byte{1, 0x80, 2, 0, 0, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		raw, name, err := SplitBinary(p)
		var r Record
		if DecodeBinary(p, &r) != nil {
			return
		}
		if err != nil || !bytes.Equal(raw, r.Raw) || string(name) != r.EventName {
			t.Errorf("SplitBinary = %q, %q, %v; DecodeBinary %q, %q", raw, name, err, r.Raw, r.EventName)
		}
	})
}
