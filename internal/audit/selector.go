package audit

import (
	"encoding/json"
	"regexp"
	"strings"
)

// AdvancedSelector is an advanced event selector, of a trail
// (PutEventSelectors) or an event data store (CreateEventDataStore): a
// record matches when every one of its field selectors holds. A set of
// selectors selects a record when any of them matches (MatchAny).
//
// Its JSON is AWS's (and reads what trails.json and Lake's registry hold:
// their types have the same members).
type AdvancedSelector struct {
	Name           string          `json:"Name,omitempty"`
	FieldSelectors []FieldSelector `json:"FieldSelectors"`
}

// FieldSelector is one condition on one field of a record. Within an
// operator the values are ORed; the operators are ANDed; a negative
// operator (NotEquals, NotStartsWith, NotEndsWith) excludes a value any of
// its values matches.
type FieldSelector struct {
	Field         string   `json:"Field"`
	Equals        []string `json:"Equals,omitempty"`
	StartsWith    []string `json:"StartsWith,omitempty"`
	EndsWith      []string `json:"EndsWith,omitempty"`
	NotEquals     []string `json:"NotEquals,omitempty"`
	NotStartsWith []string `json:"NotStartsWith,omitempty"`
	NotEndsWith   []string `json:"NotEndsWith,omitempty"`
}

// SelectorTarget is what advanced selectors are validated for: trails and
// event data stores accept different categories and limits.
type SelectorTarget int

const (
	// ForTrail: eventCategory Management, Data or NetworkActivity.
	ForTrail SelectorTarget = iota
	// ForEventDataStore: at most 5 selectors, each naming exactly one
	// eventCategory, all of one kind: CloudTrail events (Management, Data,
	// NetworkActivity), Insight, ConfigurationItem, Evidence or
	// ActivityAuditLog.
	ForEventDataStore
)

// Limits of advanced selectors (facts §7.3, §8.1).
const (
	MaxSelectorValues      = 500  // values of all conditions of all selectors
	MaxStoreSelectors      = 5    // selectors of an event data store
	maxSelectorName        = 1000 // bytes of a selector's Name
	maxSelectorField       = 1000 // bytes of a Field
	maxSelectorValue       = 2048 // bytes of a value
	codeInvalidEventSelect = "InvalidEventSelectors"
)

// selectorFields are the fields AWS's advanced selectors take, each with
// the operators it accepts (only Equals, or all).
var selectorFields = map[string]bool{ // field -> only Equals
	"eventCategory": true, "readOnly": true, "resources.type": true,
	"eventSource": false, "eventName": false, "eventType": false, "resources.ARN": false, "errorCode": false,
	"sessionCredentialFromConsole": false, "userIdentity.arn": false, "vpcEndpointId": false,
}

const selectorFieldList = "eventCategory, eventSource, eventName, eventType, readOnly, resources.type, resources.ARN, errorCode, sessionCredentialFromConsole, userIdentity.arn, vpcEndpointId"

// selectorFieldPattern is the Field pattern of AWS's model.
var selectorFieldPattern = regexp.MustCompile(`^[\w|\d|\.|_]+$`)

var storeCategories = map[string]string{ // eventCategory -> the kind of store
	"Management": "CloudTrail", "Data": "CloudTrail", "NetworkActivity": "CloudTrail",
	"Insight": "Insight", "ConfigurationItem": "ConfigurationItem", "Evidence": "Evidence", "ActivityAuditLog": "ActivityAuditLog",
}

// ValidateSelectors checks advanced selectors as CloudTrail does when they
// are set, for target. Every error is an *Error of code
// InvalidEventSelectors whose message says what is wrong (quoting client
// values cut to 128 bytes). A field AWS does not know is refused, so
// selectors that pass never hold one.
func ValidateSelectors(sels []AdvancedSelector, target SelectorTarget) error {
	if target == ForEventDataStore && len(sels) > MaxStoreSelectors {
		return Errorf(codeInvalidEventSelect, "An event data store can have at most %d advanced event selectors.", MaxStoreSelectors)
	}
	n, kind := 0, ""
	for _, s := range sels {
		if len(s.Name) > maxSelectorName {
			return Errorf(codeInvalidEventSelect, "An advanced event selector name can have at most %d characters.", maxSelectorName)
		}
		if len(s.FieldSelectors) == 0 {
			return Errorf(codeInvalidEventSelect, "An advanced event selector needs at least one field selector.")
		}
		hasCategory := false
		for _, f := range s.FieldSelectors {
			if f.Field == "" || len(f.Field) > maxSelectorField || !selectorFieldPattern.MatchString(f.Field) {
				return Errorf(codeInvalidEventSelect, "A field selector needs a Field of 1 to %d characters [A-Za-z0-9._].", maxSelectorField)
			}
			onlyEquals, known := selectorFields[f.Field]
			if !known {
				return Errorf(codeInvalidEventSelect, "Field %q is not valid. Valid fields: %s.", Truncate(f.Field, 128), selectorFieldList)
			}
			values := 0
			for _, l := range [][]string{f.Equals, f.StartsWith, f.EndsWith, f.NotEquals, f.NotStartsWith, f.NotEndsWith} {
				for _, v := range l {
					if v == "" || len(v) > maxSelectorValue {
						return Errorf(codeInvalidEventSelect, "Values of field selector %s must be 1 to %d characters long.", f.Field, maxSelectorValue)
					}
				}
				values += len(l)
			}
			if values == 0 {
				return Errorf(codeInvalidEventSelect, "Field selector %s needs at least one operator with a value.", f.Field)
			}
			n += values
			if onlyEquals && values != len(f.Equals) {
				return Errorf(codeInvalidEventSelect, "Field selector %s takes only the Equals operator.", f.Field)
			}
			switch f.Field {
			case "readOnly":
				for _, v := range f.Equals {
					if v != "true" && v != "false" {
						return Errorf(codeInvalidEventSelect, "readOnly %q is not valid. Valid values: true, false.", Truncate(v, 128))
					}
				}
			case "eventCategory":
				hasCategory = true
				if err := checkCategories(f.Equals, target, &kind); err != nil {
					return err
				}
			}
		}
		if !hasCategory {
			return Errorf(codeInvalidEventSelect, "Each advanced event selector must have a field selector for eventCategory.")
		}
	}
	if n > MaxSelectorValues {
		return Errorf(codeInvalidEventSelect, "Advanced event selectors can have at most %d values in all.", MaxSelectorValues)
	}
	return nil
}

// checkCategories checks the values of an eventCategory condition; kind
// is the kind of events an event data store's selectors asked for so far.
func checkCategories(cats []string, target SelectorTarget, kind *string) error {
	if target == ForTrail {
		for _, c := range cats {
			if c != "Management" && c != "Data" && c != "NetworkActivity" {
				return Errorf(codeInvalidEventSelect, "eventCategory %q is not valid for a trail. Valid values: Management, Data, NetworkActivity.", Truncate(c, 128))
			}
		}
		return nil
	}
	if len(cats) != 1 || storeCategories[cats[0]] == "" {
		return Errorf(codeInvalidEventSelect, "eventCategory takes one of Equals Management, Data, NetworkActivity, Insight, ActivityAuditLog, ConfigurationItem or Evidence.")
	}
	k := storeCategories[cats[0]]
	if *kind != "" && *kind != k {
		return Errorf(codeInvalidEventSelect, "An event data store holds one kind of events; the selectors ask for %s and %s.", *kind, k)
	}
	*kind = k
	return nil
}

// MatchAny reports whether any of sels matches r: whether a trail or an
// event data store with these advanced selectors takes r.
func MatchAny(sels []AdvancedSelector, r *Record) bool {
	var m recordFields
	for i := range sels {
		if sels[i].match(r, &m) {
			return true
		}
	}
	return false
}

// Matches reports whether every field selector of s holds for r.
//
// A field the record does not have (readOnly unset, no resources, no
// errorCode...) satisfies no condition, negative ones included. A field
// ValidateSelectors refuses matches nothing: selectors that were never
// validated fail closed instead of taking every record.
func (s *AdvancedSelector) Matches(r *Record) bool {
	var m recordFields
	return s.match(r, &m)
}

func (s *AdvancedSelector) match(r *Record, m *recordFields) bool {
	for i := range s.FieldSelectors {
		if !s.FieldSelectors[i].match(r, m) {
			return false
		}
	}
	return true
}

// recordFields are the selector fields Record does not index, read from
// Raw once per record, when a selector first asks for one (allocated only
// then: most selectors never ask).
type recordFields struct {
	fields *rawFields
}

type rawFields struct {
	EventType                    string `json:"eventType"`
	ErrorCode                    string `json:"errorCode"`
	SessionCredentialFromConsole any    `json:"sessionCredentialFromConsole"`
	VPCEndpointID                string `json:"vpcEndpointId"`
	UserIdentity                 struct {
		ARN string `json:"arn"`
	} `json:"userIdentity"`
}

func (m *recordFields) get(r *Record) *recordFields {
	if m.fields == nil {
		m.fields = new(rawFields)
		_ = json.Unmarshal(r.Raw, m.fields) // a member of another type stays empty
	}
	return m
}

// match evaluates the condition on the record's values of the field: none
// when the record has none (then it does not hold), more than one for
// resources (then it holds when it holds for any). It allocates nothing:
// selectors run on every record of every trail and store.
func (f *FieldSelector) match(r *Record, m *recordFields) bool {
	switch f.Field {
	case "eventCategory":
		return f.matchValue(r.Category.String())
	case "eventSource":
		return f.matchOne(r.EventSource)
	case "eventName":
		return f.matchOne(r.EventName)
	case "readOnly":
		return f.matchOne(r.ReadOnly.String())
	case "resources.type":
		for i := range r.Resources {
			if f.matchValue(r.Resources[i].Type) {
				return true
			}
		}
		return false
	case "resources.ARN":
		for i := range r.Resources {
			if r.Resources[i].ARN != "" && f.matchValue(r.Resources[i].ARN) {
				return true
			}
		}
		return false
	case "eventType":
		return f.matchOne(m.get(r).fields.EventType)
	case "errorCode":
		return f.matchOne(m.get(r).fields.ErrorCode)
	case "vpcEndpointId":
		return f.matchOne(m.get(r).fields.VPCEndpointID)
	case "userIdentity.arn":
		return f.matchOne(m.get(r).fields.UserIdentity.ARN)
	case "sessionCredentialFromConsole":
		switch v := m.get(r).fields.SessionCredentialFromConsole.(type) {
		case string:
			return f.matchOne(v)
		case bool: // AWS writes the string "true"; a boolean is read alike
			if v {
				return f.matchValue("true")
			}
			return f.matchValue("false")
		}
	}
	// a field ValidateSelectors refuses matches nothing
	return false
}

// matchOne evaluates the condition on a single value; empty is absent.
func (f *FieldSelector) matchOne(v string) bool {
	return v != "" && f.matchValue(v)
}

func (f *FieldSelector) matchValue(v string) bool {
	anyOf := func(l []string, test func(v, a string) bool) bool {
		for _, a := range l {
			if test(v, a) {
				return true
			}
		}
		return false
	}
	equal := func(v, a string) bool { return v == a }
	if len(f.Equals) > 0 && !anyOf(f.Equals, equal) ||
		len(f.StartsWith) > 0 && !anyOf(f.StartsWith, strings.HasPrefix) ||
		len(f.EndsWith) > 0 && !anyOf(f.EndsWith, strings.HasSuffix) {
		return false
	}
	return !anyOf(f.NotEquals, equal) && !anyOf(f.NotStartsWith, strings.HasPrefix) && !anyOf(f.NotEndsWith, strings.HasSuffix)
}
