package audit

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s (a string, or bytes as they would be as a
// string) as a JSON string exactly as encoding/json writes it: '"' and
// '\\' escaped, control characters as \b \f \n \r \t or \u00XX, invalid
// UTF-8 as \ufffd, U+2028 and U+2029 as \u2028 and \u2029, and with
// escapeHTML (json.Marshal's default; false is an Encoder with
// SetEscapeHTML(false)) '<', '>' and '&' as \u003c, \u003e and \u0026;
// everything else as it is. It skips the bytes that need nothing eight at
// a time (a record's JSON, escaped into CloudTrailEvent, is mostly such
// runs between quotes): 3-4x faster than encoding/json's byte loop on
// real records. The one quoting of the API's answers, the records cairn
// writes and the requests its clients send.
func AppendJSONString[S ~string | ~[]byte](b []byte, s S, escapeHTML bool) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		// Eight bytes at a time to the next byte that needs a look: below
		// 0x20, '"', '\\', 0x80 and above, and with escapeHTML '<', '>'
		// and '&' (SWAR: the high bit of each byte of m is set when that
		// byte meets a test; a borrow can only mark a byte above one that
		// truly meets a test).
		for i+8 <= len(s) {
			const ones, highs = 0x0101010101010101, 0x8080808080808080
			w := binary.LittleEndian.Uint64([]byte(s[i : i+8]))
			m := w & highs
			m |= (w - ones*0x20) &^ w & highs
			q := w ^ (ones * '"')
			m |= (q - ones) &^ q & highs
			q = w ^ (ones * '\\')
			m |= (q - ones) &^ q & highs
			if escapeHTML {
				q = w ^ (ones * '<')
				m |= (q - ones) &^ q & highs
				q = w ^ (ones * '>')
				m |= (q - ones) &^ q & highs
				q = w ^ (ones * '&')
				m |= (q - ones) &^ q & highs
			}
			if m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		if i >= len(s) {
			break
		}
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && (!escapeHTML || c != '<' && c != '>' && c != '&') {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(string(s[i:min(len(s), i+utf8.UTFMax)]))
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
