package apiserver

import (
	"unicode/utf8"

	"github.com/cairn-audit/cairn/internal/awsjson"
)

// importRecordsBody reads the records of an ImportRecords body of the one
// shape `cairn import` and the SDKs send, {"Records":["...", ...]} with
// any whitespace between tokens, each record unquoted into its own slice.
// It returns ok false for any other body, or a string it does not read the
// way encoding/json does for certain (a control byte, a \u escape of a
// surrogate or NUL, a bad escape): the caller then decodes the body with
// awsjson.Decode, which answers what is wrong with it. The general decoder
// read the body twice into a tree of interfaces and copied each record
// twice more; it was a third of the handler's CPU in BenchmarkLiveIngest.
func importRecordsBody(body []byte) (records [][]byte, ok bool) {
	if awsjson.CheckText(body) != nil {
		return nil, false
	}
	i := skipSpace(body, 0)
	const member = `"Records"`
	if i >= len(body) || body[i] != '{' {
		return nil, false
	}
	i = skipSpace(body, i+1)
	if len(body)-i < len(member) || string(body[i:i+len(member)]) != member {
		return nil, false
	}
	i = skipSpace(body, i+len(member))
	if i >= len(body) || body[i] != ':' {
		return nil, false
	}
	i = skipSpace(body, i+1)
	if i >= len(body) || body[i] != '[' {
		return nil, false
	}
	i = skipSpace(body, i+1)
	if i < len(body) && body[i] == ']' {
		i++
	} else {
		for {
			rec, next, ok := unquote(body, i)
			if !ok {
				return nil, false
			}
			records = append(records, rec)
			i = skipSpace(body, next)
			if i >= len(body) {
				return nil, false
			}
			if body[i] == ']' {
				i++
				break
			}
			if body[i] != ',' {
				return nil, false
			}
			i = skipSpace(body, i+1)
		}
	}
	i = skipSpace(body, i)
	if i >= len(body) || body[i] != '}' {
		return nil, false
	}
	if skipSpace(body, i+1) != len(body) {
		return nil, false
	}
	if records == nil {
		records = [][]byte{}
	}
	return records, true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// unquote reads the JSON string starting at b[i] (its opening quote) and
// returns its value and the index after its closing quote. The body is
// valid UTF-8 (CheckText).
func unquote(b []byte, i int) (out []byte, next int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	i++
	// The value is at most as long as its quoted form.
	end := i
	for end < len(b) && b[end] != '"' {
		if b[end] == '\\' {
			end++
		}
		end++
	}
	if end >= len(b) {
		return nil, 0, false
	}
	out = make([]byte, 0, end-i)
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			return out, i + 1, true
		case c < 0x20:
			return nil, 0, false
		case c != '\\':
			// Copy the run up to the next quote, escape or control byte.
			j := i + 1
			for j < len(b) && b[j] != '"' && b[j] != '\\' && b[j] >= 0x20 {
				j++
			}
			out = append(out, b[i:j]...)
			i = j
			continue
		}
		if i+1 >= len(b) {
			return nil, 0, false
		}
		switch b[i+1] {
		case '"', '\\', '/':
			out = append(out, b[i+1])
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
			r, ok := awsjson.Hex4(b, i+2)
			// NUL and surrogates are the general decoder's to judge.
			if !ok || r == 0 || (r >= 0xD800 && r <= 0xDFFF) {
				return nil, 0, false
			}
			out = utf8.AppendRune(out, r)
			i += 6
			continue
		default:
			return nil, 0, false
		}
		i += 2
	}
	return nil, 0, false
}
