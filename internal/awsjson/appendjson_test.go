package awsjson

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// stringSamples are strings that exercise every escape encoding/json makes.
var stringSamples = []string{
	"", "plain", `quote " and backslash \`, "\x00\x01\x1f\x7f", "\b\f\n\r\t",
	"<html> & 'amp'", "\u2028 and \u2029", "\xff\xfe invalid", "caf\xc3\xa9 \xe2\x82", "日本語 🚀",
	`{"eventVersion":"1.08","userIdentity":{"type":"IAMUser"},"requestParameters":{"a":"<b>"}}`,
	"\xed\xa0\x80 surrogate", strings.Repeat("x", 5000) + "\n",
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	check := func(s string) {
		t.Helper()
		want, err := encode(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendString(nil, s); string(got) != string(want) {
			t.Fatalf("AppendString(%q) = %s, encoding/json: %s", s, got, want)
		}
		if got := AppendString(nil, []byte(s)); string(got) != string(want) {
			t.Fatalf("AppendString([]byte(%q)) = %s, encoding/json: %s", s, got, want)
		}
	}
	for _, s := range stringSamples {
		check(s)
	}
	// Random strings over the bytes that matter: ASCII, controls, the
	// bytes of U+2028, continuation and invalid bytes.
	alphabet := []byte("a\"\\\x00\x1f\n\t<>&\xe2\x80\xa8\xa9\xc3\xff\xf0\x9f\xed")
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		b := make([]byte, r.IntN(40)) // past 8: the eight-byte runs
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		check(string(b))
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range stringSamples {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := encode(s)
		if err != nil {
			t.Fatal(err)
		}
		got := AppendString(nil, s)
		if string(got) != string(want) {
			t.Fatalf("AppendString(%q) = %s, encoding/json: %s", s, got, want)
		}
		if !utf8.Valid(got) {
			t.Fatalf("invalid UTF-8 out of %q", s)
		}
	})
}

func TestTimestampAppendJSON(t *testing.T) {
	for _, ms := range []int64{0, 1, 500, 1441139757497, 1700000000500, 1700000000000, -1500} {
		ts := NewTimestamp(time.UnixMilli(ms))
		want, _ := encode(ts)
		if got := ts.AppendJSON([]byte("x")); string(got) != "x"+string(want) {
			t.Fatalf("%d: AppendJSON %s, encoding/json %s", ms, got, want)
		}
	}
}
