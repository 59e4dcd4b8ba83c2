package trail

import (
	"regexp"
	"strings"

	"github.com/cairn-audit/cairn/internal/audit"
)

// EventSelector is a basic event selector, as PutEventSelectors takes it.
type EventSelector struct {
	ReadWriteType                 *string        `json:"ReadWriteType,omitempty"`
	IncludeManagementEvents       *bool          `json:"IncludeManagementEvents,omitempty"`
	DataResources                 []DataResource `json:"DataResources"`
	ExcludeManagementEventSources []string       `json:"ExcludeManagementEventSources"`
}

// DataResource selects data events of one resource type.
type DataResource struct {
	Type   *string  `json:"Type,omitempty"`
	Values []string `json:"Values"`
}

// AdvancedEventSelector is an advanced event selector: every field
// selector must match.
type AdvancedEventSelector struct {
	Name           *string                 `json:"Name,omitempty"`
	FieldSelectors []AdvancedFieldSelector `json:"FieldSelectors"`
}

// AdvancedFieldSelector is one condition on one field. Within an operator
// the values are ORed; the operators are ANDed.
type AdvancedFieldSelector struct {
	Field         *string  `json:"Field"`
	Equals        []string `json:"Equals,omitempty"`
	StartsWith    []string `json:"StartsWith,omitempty"`
	EndsWith      []string `json:"EndsWith,omitempty"`
	NotEquals     []string `json:"NotEquals,omitempty"`
	NotStartsWith []string `json:"NotStartsWith,omitempty"`
	NotEndsWith   []string `json:"NotEndsWith,omitempty"`
}

// defaultSelectors is a new trail's selection: all management events.
func defaultSelectors() []EventSelector {
	all, yes := "All", true
	return []EventSelector{{ReadWriteType: &all, IncludeManagementEvents: &yes, DataResources: []DataResource{}, ExcludeManagementEventSources: []string{}}}
}

// Limits of PutEventSelectors (facts §2.3).
const (
	maxBasicSelectors   = 5
	maxDataResources    = 250
	maxAdvancedValues   = 500
	maxAdvancedSelector = 500
)

// dataResourceTypes are the basic selectors' resource types and the ARN
// prefix of their values.
var dataResourceTypes = map[string]string{
	"AWS::S3::Object":       "arn:aws:s3:::",
	"AWS::Lambda::Function": "arn:aws:lambda",
	"AWS::DynamoDB::Table":  "arn:aws:dynamodb",
}

// advancedFields are the fields cairn evaluates in advanced selectors.
var advancedFields = map[string]bool{
	"eventCategory": true, "eventSource": true, "eventName": true, "readOnly": true,
	"resources.type": true, "resources.ARN": true,
}

var fieldPattern = regexp.MustCompile(`^[\w|\d|\.|_]+$`)

// validateBasic checks basic selectors as AWS does; the error message says
// what is wrong.
func validateBasic(sels []EventSelector) error {
	if len(sels) > maxBasicSelectors {
		return audit.Errorf("InvalidEventSelectors", "A trail can have at most %d event selectors.", maxBasicSelectors)
	}
	n := 0
	for _, s := range sels {
		if s.ReadWriteType != nil {
			switch *s.ReadWriteType {
			case "ReadOnly", "WriteOnly", "All":
			default:
				return audit.Errorf("InvalidEventSelectors", "ReadWriteType %q is not valid. Valid values: ReadOnly, WriteOnly, All.", clip(*s.ReadWriteType))
			}
		}
		for _, d := range s.DataResources {
			if d.Type == nil {
				return audit.Errorf("InvalidEventSelectors", "A data resource needs a Type.")
			}
			prefix, ok := dataResourceTypes[*d.Type]
			if !ok {
				return audit.Errorf("InvalidEventSelectors", "Data resource type %q is not supported. Valid types: AWS::S3::Object, AWS::Lambda::Function, AWS::DynamoDB::Table.", clip(*d.Type))
			}
			for _, v := range d.Values {
				if !strings.HasPrefix(v, prefix) && !(*d.Type == "AWS::S3::Object" && v == "arn:aws:s3") {
					return audit.Errorf("InvalidEventSelectors", "Value %s for data resource type %s is not valid.", clip(v), *d.Type)
				}
				n++
			}
		}
		if len(s.ExcludeManagementEventSources) > 0 {
			for _, src := range s.ExcludeManagementEventSources {
				if src != "kms.amazonaws.com" && src != "rdsdata.amazonaws.com" {
					return audit.Errorf("InvalidEventSelectors", "Excluding management event source %s is not supported. Valid values: kms.amazonaws.com, rdsdata.amazonaws.com.", clip(src))
				}
			}
		}
	}
	if n > maxDataResources {
		return audit.Errorf("InvalidEventSelectors", "A trail can have at most %d data resources.", maxDataResources)
	}
	return nil
}

// validateAdvanced checks advanced selectors.
func validateAdvanced(sels []AdvancedEventSelector) error {
	n := 0
	for _, s := range sels {
		if s.Name != nil && len(*s.Name) > 1000 {
			return audit.Errorf("InvalidEventSelectors", "An advanced event selector name can have at most 1000 characters.")
		}
		if len(s.FieldSelectors) == 0 {
			return audit.Errorf("InvalidEventSelectors", "An advanced event selector needs at least one field selector.")
		}
		hasCategory := false
		for _, f := range s.FieldSelectors {
			if f.Field == nil || *f.Field == "" || len(*f.Field) > 1000 || !fieldPattern.MatchString(*f.Field) {
				return audit.Errorf("InvalidEventSelectors", "A field selector needs a Field of 1 to 1000 characters [A-Za-z0-9._].")
			}
			if !advancedFields[*f.Field] {
				return audit.Errorf("InvalidEventSelectors", "Field %s is not supported by cairn's advanced event selectors. Supported: eventCategory, eventSource, eventName, readOnly, resources.type, resources.ARN.", clip(*f.Field))
			}
			hasCategory = hasCategory || *f.Field == "eventCategory"
			lists := [][]string{f.Equals, f.StartsWith, f.EndsWith, f.NotEquals, f.NotStartsWith, f.NotEndsWith}
			any := false
			for _, l := range lists {
				for _, v := range l {
					if v == "" || len(v) > 2048 {
						return audit.Errorf("InvalidEventSelectors", "Values of field selector %s must be 1 to 2048 characters long.", *f.Field)
					}
					n++
					any = true
				}
			}
			if !any {
				return audit.Errorf("InvalidEventSelectors", "Field selector %s needs at least one operator with a value.", *f.Field)
			}
		}
		if !hasCategory {
			return audit.Errorf("InvalidEventSelectors", "Each advanced event selector must have a field selector for eventCategory.")
		}
	}
	if n > maxAdvancedValues {
		return audit.Errorf("InvalidEventSelectors", "Advanced event selectors can have at most %d values in all.", maxAdvancedValues)
	}
	return nil
}

// globalSources are the services whose events are global service events,
// recorded in us-east-1 (facts §4.3).
// (A switch, not a map: Selects runs per record and trail.)
func isGlobal(source string) bool {
	switch source {
	case "iam.amazonaws.com", "sts.amazonaws.com", "cloudfront.amazonaws.com", "signin.amazonaws.com":
		return true
	}
	return false
}

// Selects reports whether t delivers r. It does not look at logging or
// delivery positions.
func (t *Trail) Selects(r *audit.Record) bool {
	if !t.selectsAccount(r.Account) || !t.Covers(r.Region) {
		return false
	}
	if !t.IncludeGlobalServiceEvents && isGlobal(r.EventSource) {
		return false
	}
	if r.Category == audit.CategoryInsight {
		return t.selectsInsight(r)
	}
	if len(t.AdvancedEventSelectors) > 0 {
		for i := range t.AdvancedEventSelectors {
			if t.AdvancedEventSelectors[i].matches(r) {
				return true
			}
		}
		return false
	}
	sels := t.EventSelectors
	if sels == nil {
		sels = defaultSelectors()
	}
	for i := range sels {
		if sels[i].matches(r) {
			return true
		}
	}
	return false
}

func (s *EventSelector) matches(r *audit.Record) bool {
	rw := "All"
	if s.ReadWriteType != nil {
		rw = *s.ReadWriteType
	}
	switch {
	case rw == "ReadOnly" && r.ReadOnly != audit.True, rw == "WriteOnly" && r.ReadOnly != audit.False:
		return false
	}
	switch r.Category {
	case audit.CategoryManagement:
		if s.IncludeManagementEvents != nil && !*s.IncludeManagementEvents {
			return false
		}
		for _, src := range s.ExcludeManagementEventSources {
			if src == r.EventSource {
				return false
			}
		}
		return true
	case audit.CategoryData:
		for _, d := range s.DataResources {
			if d.Type == nil {
				continue
			}
			for _, res := range r.Resources {
				if res.Type != *d.Type {
					continue
				}
				for _, v := range d.Values {
					if v == "arn:aws:s3" || strings.HasPrefix(res.ARN, v) || v == dataResourceTypes[*d.Type] {
						return true
					}
				}
			}
		}
	}
	return false
}

func (s *AdvancedEventSelector) matches(r *audit.Record) bool {
	for i := range s.FieldSelectors {
		if !s.FieldSelectors[i].matches(r) {
			return false
		}
	}
	return true
}

// matches evaluates one field selector: for a multi-valued field
// (resources), the selector matches when any value does.
func (f *AdvancedFieldSelector) matches(r *audit.Record) bool {
	var vals []string
	switch *f.Field {
	case "eventCategory":
		vals = []string{r.Category.String()}
	case "eventSource":
		vals = []string{r.EventSource}
	case "eventName":
		vals = []string{r.EventName}
	case "readOnly":
		switch r.ReadOnly {
		case audit.True:
			vals = []string{"true"}
		case audit.False:
			vals = []string{"false"}
		}
	case "resources.type":
		for _, res := range r.Resources {
			vals = append(vals, res.Type)
		}
	case "resources.ARN":
		for _, res := range r.Resources {
			vals = append(vals, res.ARN)
		}
	}
	for _, v := range vals {
		if f.matchValue(v) {
			return true
		}
	}
	return false
}

func (f *AdvancedFieldSelector) matchValue(v string) bool {
	anyOf := func(l []string, test func(a string) bool) bool {
		for _, a := range l {
			if test(a) {
				return true
			}
		}
		return false
	}
	if len(f.Equals) > 0 && !anyOf(f.Equals, func(a string) bool { return v == a }) {
		return false
	}
	if len(f.StartsWith) > 0 && !anyOf(f.StartsWith, func(a string) bool { return strings.HasPrefix(v, a) }) {
		return false
	}
	if len(f.EndsWith) > 0 && !anyOf(f.EndsWith, func(a string) bool { return strings.HasSuffix(v, a) }) {
		return false
	}
	if anyOf(f.NotEquals, func(a string) bool { return v == a }) ||
		anyOf(f.NotStartsWith, func(a string) bool { return strings.HasPrefix(v, a) }) ||
		anyOf(f.NotEndsWith, func(a string) bool { return strings.HasSuffix(v, a) }) {
		return false
	}
	return true
}

// clip shortens a value quoted in a message.
func clip(s string) string {
	if len(s) > 128 {
		return s[:128] + "..."
	}
	return s
}
