package audit

import (
	"strings"
	"unicode/utf8"
)

// Ellipsis is what Clip appends to a string it shortened.
const Ellipsis = "..."

// Truncate returns s cut to at most n bytes without splitting a UTF-8
// character: s itself when it fits, else its longest prefix of whole
// characters (invalid bytes in the prefix dropped), always valid UTF-8.
// It caps stored fields (a record's userAgent, errorMessage) whose size is
// a limit.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	i := n
	// A character starts at s[n]: s[:n] ends whole. Else step back to the
	// start of the character s[n] is inside (at most UTFMax-1 bytes back
	// in valid UTF-8; invalid bytes are dropped below).
	for j := 0; j < utf8.UTFMax-1 && i > 0 && !utf8.RuneStart(s[i]); j++ {
		i--
	}
	return strings.ToValidUTF8(s[:i], "")
}

// Clip returns s for a message or a log: s itself when it has at most n
// bytes, else Truncate(s, n) followed by Ellipsis (so at most n+3 bytes).
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return Truncate(s, n) + Ellipsis
}
