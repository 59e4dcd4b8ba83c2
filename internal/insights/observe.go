package insights

import (
	"bytes"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/cairn-audit/cairn/internal/audit"
)

// obsView is the part of a record the detector reads beyond what Extract
// indexed.
type obsView struct {
	ErrorCode string `json:"errorCode"`
}

var lenient = json.JoinOptions(jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))

// Observe turns a stored record into an Observation. ok is false for
// records the detector does not analyse: other categories than management
// (Insights records included) and read calls that succeeded. A record whose
// errorCode cannot be read counts as a success.
func Observe(r audit.Record) (o Observation, ok bool) {
	if r.Category != audit.CategoryManagement {
		return o, false
	}
	o = Observation{Time: r.Time, Account: r.Account, Region: r.Region, EventSource: r.EventSource,
		EventName: r.EventName, Write: r.ReadOnly == audit.False}
	if hasErrorCode(r.Raw) {
		o.ErrorCode = errorCode(r.Raw)
	}
	return o, o.Write || o.ErrorCode != ""
}

// errorCode returns the record's top-level errorCode: a scan that tracks
// nesting and strings finds it without decoding the record, and the JSON
// decoder reads it when the value is not a plain string (escapes, another
// type) or the record is not well formed.
func errorCode(raw []byte) string {
	const key = `"errorCode"`
	depth := 0
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; c {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		case '"':
			if depth == 1 && bytes.HasPrefix(raw[i:], []byte(key)) {
				j := i + len(key)
				for j < len(raw) && isSpace(raw[j]) {
					j++
				}
				if j < len(raw) && raw[j] == ':' { // a member name, not a value
					j++
					for j < len(raw) && isSpace(raw[j]) {
						j++
					}
					if j < len(raw) && raw[j] == '"' {
						end := bytes.IndexByte(raw[j+1:], '"')
						if end >= 0 {
							v := raw[j+1 : j+1+end]
							if bytes.IndexByte(v, '\\') < 0 && utf8.Valid(v) && audit.IndexAt(raw[j+1+end+1:], key, keyAnchor) < 0 {
								return string(v)
							}
						}
					}
					return slowErrorCode(raw)
				}
			}
			// skip the string
			for i++; i < len(raw) && raw[i] != '"'; i++ {
				if raw[i] == '\\' {
					i++
				}
			}
		}
	}
	return ""
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func slowErrorCode(raw []byte) string {
	var v obsView
	if json.Unmarshal(raw, &v, lenient) == nil {
		return v.ErrorCode
	}
	return ""
}

// hasErrorCode is a cheap pre-check: most records have no errorCode and are
// not parsed again.
func hasErrorCode(raw []byte) bool {
	return audit.IndexAt(raw, `"errorCode"`, keyAnchor) >= 0
}

// keyAnchor is the index of the C of "errorCode", the byte audit.IndexAt
// looks for (bytes.Contains took 4% of an import's CPU, session 33).
const keyAnchor = 6
