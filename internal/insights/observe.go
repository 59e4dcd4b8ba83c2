package insights

import (
	"bytes"

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
		var v obsView
		if json.Unmarshal(r.Raw, &v, lenient) == nil {
			o.ErrorCode = v.ErrorCode
		}
	}
	return o, o.Write || o.ErrorCode != ""
}

// hasErrorCode is a cheap pre-check: most records have no errorCode and are
// not parsed again.
func hasErrorCode(raw []byte) bool {
	return bytes.Contains(raw, []byte(`"errorCode"`))
}
