package awsjson

import "strings"

// maxTarget bounds the length of an X-Amz-Target value ParseTarget accepts.
const maxTarget = 512

// ParseTarget splits an X-Amz-Target header value into the service prefix
// and the operation. Both the full form botocore sends,
// "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents", and
// the short "CloudTrail_20131101.LookupEvents" give ("CloudTrail_20131101",
// "LookupEvents", true). Every dot-separated part must be non-empty and made
// of ASCII letters, digits, '_' and '-'; anything else (or a value longer
// than 512 bytes) gives ok == false. The caller checks that prefix and op
// are ones it serves.
func ParseTarget(h string) (prefix, op string, ok bool) {
	if len(h) > maxTarget {
		return "", "", false
	}
	parts := strings.Split(h, ".")
	if len(parts) < 2 {
		return "", "", false
	}
	for _, p := range parts {
		if !validName(p) {
			return "", "", false
		}
	}
	return parts[len(parts)-2], parts[len(parts)-1], true
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
