package audit

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// jsonStringSamples are strings that exercise every escape encoding/json
// makes.
var jsonStringSamples = []string{
	"", "plain", `quote " and backslash \`, "\x00\x01\x1f\x7f", "\b\f\n\r\t",
	"<html> & 'amp'", "\u2028 and \u2029", "\xff\xfe invalid", "caf\xc3\xa9 \xe2\x82", "日本語 🚀",
	`{"eventVersion":"1.08","userIdentity":{"type":"IAMUser"},"requestParameters":{"a":"<b>"}}`,
	"\xed\xa0\x80 surrogate", "a\xe2\x80", strings.Repeat("x", 5000) + "\n", strings.Repeat("abcdefg&", 9),
}

// encodingJSON is s as encoding/json writes it, with or without HTML
// escaping.
func encodingJSON(t testing.TB, s string, escapeHTML bool) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(escapeHTML)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func checkJSONString(t testing.TB, s string) {
	t.Helper()
	for _, html := range []bool{false, true} {
		want := encodingJSON(t, s, html)
		if got := AppendJSONString([]byte("x"), s, html); got[0] != 'x' || !bytes.Equal(got[1:], want) {
			t.Fatalf("AppendJSONString(%q, escapeHTML %v) = %s, encoding/json: %s", s, html, got[1:], want)
		}
		if got := AppendJSONString(nil, []byte(s), html); !bytes.Equal(got, want) {
			t.Fatalf("AppendJSONString([]byte(%q), escapeHTML %v) = %s, encoding/json: %s", s, html, got, want)
		}
	}
}

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range jsonStringSamples {
		checkJSONString(t, s)
	}
	// Random strings over the bytes that matter: ASCII, controls, the
	// HTML characters, the bytes of U+2028, continuation and invalid bytes.
	alphabet := []byte("a\"\\\x00\x1f\n\t<>&\xe2\x80\xa8\xa9\xc3\xff\xf0\x9f\xed")
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		b := make([]byte, r.IntN(40)) // past 8: the eight-byte runs
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		checkJSONString(t, string(b))
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range jsonStringSamples {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkJSONString(t, s)
		if got := AppendJSONString(nil, s, false); !utf8.Valid(got) {
			t.Fatalf("invalid UTF-8 out of %q", s)
		}
	})
}

func BenchmarkAppendJSONString(b *testing.B) {
	rec := strings.Repeat(`{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::123456789012:user/alice"},"eventName":"PutObject"}`, 10)
	var buf []byte
	b.SetBytes(int64(len(rec)))
	for b.Loop() {
		buf = AppendJSONString(buf[:0], rec, false)
	}
}
