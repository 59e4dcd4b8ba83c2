package apiserver

import (
	"unicode/utf8"

	"github.com/cairn-audit/cairn/internal/awsjson"
)

// importRecordsBody reads the records of an ImportRecords body of the one
// shape `cairn import` and the SDKs send, {"Records":["...", ...]} with
// any whitespace between tokens, in one pass over the body: each record
// is unquoted into one buffer the size of the body, and returned as its
// own slice of it (clipped: an append to one cannot reach the next). It
// returns ok false for any other body (another member, a repeated one, an
// escaped member name, a value of another type, trailing bytes), for bytes
// that are not UTF-8, for a control character in a string, and for a \u
// escape of NUL or of a UTF-16 surrogate (half of a pair): the caller then
// decodes the body with awsjson.Decode, which answers what is wrong with
// it or reads it. The general decoder read the body twice into a tree of
// interfaces and copied each record twice more (a third of the handler's
// CPU in BenchmarkLiveIngest); a token reader (jsontext) with the body's
// text check before it still took 8% of the server's CPU (issue 15).
func importRecordsBody(body []byte) (records [][]byte, ok bool) {
	if !utf8.Valid(body) {
		return nil, false
	}
	i := 0
	expect := func(lit string) bool {
		i = skipSpace(body, i)
		if len(body)-i < len(lit) || string(body[i:i+len(lit)]) != lit {
			return false
		}
		i += len(lit)
		return true
	}
	if !expect("{") || !expect(`"Records"`) || !expect(":") || !expect("[") {
		return nil, false
	}
	out := make([]byte, 0, len(body))
	records = make([][]byte, 0, 128)
	if !expect("]") {
		for {
			i = skipSpace(body, i)
			if i >= len(body) || body[i] != '"' {
				return nil, false
			}
			start := len(out)
			var ok bool
			if out, i, ok = appendUnquoted(out, body, i+1); !ok {
				return nil, false
			}
			records = append(records, out[start:len(out):len(out)])
			if expect(",") {
				continue
			}
			if !expect("]") {
				return nil, false
			}
			break
		}
	}
	if !expect("}") || skipSpace(body, i) != len(body) {
		return nil, false
	}
	return records, true
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
// (just after its opening quote) unquoted, and returns the index just
// after its closing quote. ok is false for an unterminated string, a
// control character, an unknown escape and a \u escape of NUL or of a
// surrogate (importRecordsBody leaves those to the general decoder).
// body is valid UTF-8: its other bytes are copied as they are.
func appendUnquoted(out, body []byte, i int) (_ []byte, next int, ok bool) {
	for {
		j := i
		for j < len(body) && body[j] != '"' && body[j] != '\\' && body[j] >= 0x20 {
			j++
		}
		out = append(out, body[i:j]...)
		if j >= len(body) || body[j] < 0x20 {
			return out, j, false
		}
		if body[j] == '"' {
			return out, j + 1, true
		}
		if j+1 >= len(body) {
			return out, j, false
		}
		switch c := body[j+1]; c {
		case '"', '\\', '/':
			out = append(out, c)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := awsjson.Hex4(body, j+2)
			if !ok || r == 0 || (r >= 0xD800 && r <= 0xDFFF) {
				return out, j, false
			}
			out = utf8.AppendRune(out, r)
			i = j + 6
			continue
		default:
			return out, j, false
		}
		i = j + 2
	}
}
