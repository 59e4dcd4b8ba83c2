package audit_test

import (
	"bytes"
	"testing"

	"github.com/cairn-audit/cairn/internal/audit"
)

func TestIndexAt(t *testing.T) {
	for _, tc := range []struct {
		s, sep string
		at     int
	}{
		{"", `"eventID":"`, 7},
		{`"eventID":"`, `"eventID":"`, 7},
		{`"eventID":`, `"eventID":"`, 7},
		{`x"eventID":"`, `"eventID":"`, 7},
		{`DDDD"eventID":"D"eventID":"`, `"eventID":"`, 7},
		{`"eventID" : "x", "eventID":"y"`, `"eventID":"`, 7},
		{`"errorCode"`, `"errorCode"`, 6},
		{`{"a":"errorCode","errorCode":"x"}`, `"errorCode"`, 6},
		{`abc`, "abc", 0},
		{`abc`, "abc", 2},
		{`ab`, "abc", 1},
		{`xabc`, "abc", 3}, // at out of range: bytes.Index
		{`xabc`, "", 0},
	} {
		if got, want := audit.IndexAt([]byte(tc.s), tc.sep, tc.at), bytes.Index([]byte(tc.s), []byte(tc.sep)); got != want {
			t.Errorf("IndexAt(%q, %q, %d) = %d; want %d", tc.s, tc.sep, tc.at, got, want)
		}
	}
}

func FuzzIndexAt(f *testing.F) {
	f.Add([]byte(`DDDD"eventID":"D"eventID":"`), "eventID", 3)
	f.Add([]byte(`"errorCode"`), `"errorCode"`, 6)
	f.Fuzz(func(t *testing.T, s []byte, sep string, at int) {
		if got, want := audit.IndexAt(s, sep, at), bytes.Index(s, []byte(sep)); got != want {
			t.Fatalf("IndexAt(%q, %q, %d) = %d; want %d", s, sep, at, got, want)
		}
	})
}
