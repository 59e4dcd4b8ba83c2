package awsjson

import (
	"fmt"
	"unicode/utf8"
)

// CheckText refuses a request body that is not text AWS's JSON services
// take: bytes that are not UTF-8, a NUL character (the byte, or \u0000
// escaped in a string or member name) and escaped UTF-16 surrogates that
// do not pair up (\ud800 alone). Each gets SerializationException (400).
//
// encoding/json would take each silently, turning the bad bytes and lone
// surrogates into U+FFFD: the values stored and recorded would not be the
// ones sent, and NUL ends the C strings of DuckDB and of the tools that
// read trail files. botocore and the AWS SDKs only send valid UTF-8 (a NUL
// in a parameter is escaped as \u0000, which this refuses too: cairn takes
// no identifier, name or value with a NUL in it).
func CheckText(body []byte) error {
	if !utf8.Valid(body) {
		return serialization(fmt.Sprintf("The request body is not valid UTF-8 (at byte offset %d).", invalidAt(body)))
	}
	inStr := false
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c == 0:
			return nulError(i)
		case c == '"':
			inStr = !inStr
		case inStr && c == '\\' && i+1 < len(body):
			if body[i+1] != 'u' {
				i++ // \" \\ \/ \b \f \n \r \t
				continue
			}
			r, ok := Hex4(body, i+2)
			if !ok {
				continue // the JSON decoder reports it
			}
			switch {
			case r == 0:
				return nulError(i)
			case r >= 0xDC00 && r <= 0xDFFF:
				return loneSurrogate(i)
			case r >= 0xD800 && r <= 0xDBFF:
				lo, ok := rune(-1), false
				if i+7 < len(body) && body[i+6] == '\\' && body[i+7] == 'u' {
					lo, ok = Hex4(body, i+8)
				}
				if !ok || lo < 0xDC00 || lo > 0xDFFF {
					return loneSurrogate(i)
				}
				i += 11
				continue
			}
			i += 5
		}
	}
	return nil
}

func nulError(at int) *Error {
	return serialization(fmt.Sprintf("The request body contains a NUL character (at byte offset %d); strings may not contain U+0000.", at))
}

func loneSurrogate(at int) *Error {
	return serialization(fmt.Sprintf("The request body contains an unpaired UTF-16 surrogate escape (at byte offset %d); strings must be valid Unicode.", at))
}

// Hex4 reads the 4 hex digits of a \u escape at b[i:].
func Hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// invalidAt is the offset of the first byte of b that is not UTF-8.
func invalidAt(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}
