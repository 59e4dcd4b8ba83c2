package audit

import "bytes"

// IndexAt returns bytes.Index(s, sep), found by sep's byte at index at:
// bytes.IndexByte looks for it at memory speed, and sep is compared where
// it is. Give it the rarest byte of sep in s. bytes.Index looks for sep's
// first byte, and a member name of a record begins with a quote, about
// every eleventh byte of a record: it fell back to comparing sep at every
// byte (sealed blocks' eventID check and the detector's errorCode check
// were 9% of an import's CPU so, session 33).
func IndexAt(s []byte, sep string, at int) int {
	n := len(sep)
	if at < 0 || at >= n {
		return bytes.Index(s, []byte(sep))
	}
	// An occurrence at p has sep[at] at p+at, and p+n <= len(s).
	end := len(s) - n + at + 1
	for i := at; i < end; i++ {
		j := bytes.IndexByte(s[i:end], sep[at])
		if j < 0 {
			return -1
		}
		i += j
		if p := i - at; string(s[p:p+n]) == sep {
			return p
		}
	}
	return -1
}
