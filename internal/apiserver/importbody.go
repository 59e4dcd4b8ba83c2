package apiserver

import (
	"bytes"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// importRecordsBody reads the records of an ImportRecords body of the one
// shape `cairn import` and the SDKs send, {"Records":["...", ...]} with
// any whitespace between tokens, in one pass over the body: each record
// is unquoted into one buffer the size of the body, and returned as its
// own slice of it (clipped: an append to one cannot reach the next). It
// returns ok false for any other body (another member, a repeated one, an
// escaped member name, a value of another type, trailing bytes), for bytes
// that are not UTF-8, for a control character in a string, and for a \u
// escape of NUL or of half a UTF-16 surrogate pair: the caller then
// decodes the body with awsjson.Decode, which answers what is wrong with
// it or reads it. The general decoder read the body twice into a tree of
// interfaces and copied each record twice more (a third of the handler's
// CPU in BenchmarkLiveIngest); a token reader (jsontext.Decoder) with the
// body's text check before it still took 8% of the server's CPU (issue
// 15), so the body's few tokens are read here and only each string's
// unquoting is jsontext's.
func importRecordsBody(body []byte) (records [][]byte, ok bool) {
	sc, ok := newBodyScanner(body, `"Records"`)
	if !ok {
		return nil, false
	}
	records = make([][]byte, 0, 128)
	if !sc.expect("]") {
		for {
			start, end, ok := sc.str()
			if !ok {
				return nil, false
			}
			records = append(records, sc.out[start:end:end])
			if sc.expect(",") {
				continue
			}
			if !sc.expect("]") {
				return nil, false
			}
			break
		}
	}
	if !sc.end() {
		return nil, false
	}
	return records, true
}

// bodyScanner reads the few tokens of a request body of one known shape,
// {"Member":[...]} (importRecordsBody, putAuditEventsBody), unquoting its
// strings into out, one buffer the size of the body.
type bodyScanner struct {
	body []byte
	i    int
	out  []byte
}

// newBodyScanner checks that body is UTF-8 and opens its object up to the
// array of member (quoted, unescaped): `{"member":[`.
func newBodyScanner(body []byte, member string) (*bodyScanner, bool) {
	if !utf8.Valid(body) {
		return nil, false
	}
	sc := &bodyScanner{body: body, out: make([]byte, 0, len(body))}
	return sc, sc.expect("{") && sc.expect(member) && sc.expect(":") && sc.expect("[")
}

// expect reads lit after any whitespace, and reports whether it was there
// (the position stays where it was when it was not, but for whitespace).
func (sc *bodyScanner) expect(lit string) bool {
	sc.i = skipSpace(sc.body, sc.i)
	if len(sc.body)-sc.i < len(lit) || string(sc.body[sc.i:sc.i+len(lit)]) != lit {
		return false
	}
	sc.i += len(lit)
	return true
}

// str reads a string after any whitespace, unquoted into out[start:end]
// (appendUnquoted: ok is false for one the general decoder must answer).
func (sc *bodyScanner) str() (start, end int, ok bool) {
	sc.i = skipSpace(sc.body, sc.i)
	if sc.i >= len(sc.body) || sc.body[sc.i] != '"' {
		return 0, 0, false
	}
	start = len(sc.out)
	if sc.out, sc.i, ok = appendUnquoted(sc.out, sc.body, sc.i+1); !ok {
		return 0, 0, false
	}
	return start, len(sc.out), true
}

// end reads the object's closing brace and reports whether nothing but
// whitespace follows it.
func (sc *bodyScanner) end() bool {
	return sc.expect("}") && skipSpace(sc.body, sc.i) == len(sc.body)
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// appendUnquoted appends to out the JSON string of body that starts at i
// (just after its opening quote) unquoted by jsontext.AppendUnquote, and
// returns the index just after its closing quote. Finding the closing
// quote only steps over escapes; the unquoting (escapes, control
// characters, surrogate pairs) is jsontext's. ok is false for an
// unterminated or invalid string and for one holding NUL
// (importRecordsBody leaves those to the general decoder, which answers
// what is wrong with them). body is valid UTF-8.
func appendUnquoted(out, body []byte, i int) (_ []byte, next int, ok bool) {
	j, escaped := i, false
	for j < len(body) && body[j] != '"' {
		if body[j] == '\\' {
			escaped = true
			j++
		}
		j++
	}
	if j >= len(body) {
		return out, j, false
	}
	start := len(out)
	out, err := jsontext.AppendUnquote(out, body[i-1:j+1])
	if err != nil || (escaped && bytes.IndexByte(out[start:], 0) >= 0) {
		return out[:start], j, false
	}
	return out, j + 1, true
}
