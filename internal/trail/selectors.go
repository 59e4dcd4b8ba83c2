package trail

import (
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

// defaultSelectors is a new trail's selection: all management events.
func defaultSelectors() []EventSelector {
	all, yes := "All", true
	return []EventSelector{{ReadWriteType: &all, IncludeManagementEvents: &yes, DataResources: []DataResource{}, ExcludeManagementEventSources: []string{}}}
}

// Limits of PutEventSelectors (facts §2.3).
const (
	maxBasicSelectors = 5
	maxDataResources  = 250
)

// dataResourceTypes are the basic selectors' resource types and the ARN
// prefix of their values.
var dataResourceTypes = map[string]string{
	"AWS::S3::Object":       "arn:aws:s3:::",
	"AWS::Lambda::Function": "arn:aws:lambda",
	"AWS::DynamoDB::Table":  "arn:aws:dynamodb",
}

// validateBasic checks basic selectors as AWS does; the error message says
// what is wrong.
func validateBasic(sels []EventSelector) error {
	if len(sels) > maxBasicSelectors {
		return audit.Errorf(audit.CodeInvalidEventSelectors, "A trail can have at most %d event selectors.", maxBasicSelectors)
	}
	n := 0
	for _, s := range sels {
		if s.ReadWriteType != nil {
			switch *s.ReadWriteType {
			case "ReadOnly", "WriteOnly", "All":
			default:
				return audit.Errorf(audit.CodeInvalidEventSelectors, "ReadWriteType %q is not valid. Valid values: ReadOnly, WriteOnly, All.", audit.Clip(*s.ReadWriteType, 128))
			}
		}
		for _, d := range s.DataResources {
			if d.Type == nil {
				return audit.Errorf(audit.CodeInvalidEventSelectors, "A data resource needs a Type.")
			}
			prefix, ok := dataResourceTypes[*d.Type]
			if !ok {
				return audit.Errorf(audit.CodeInvalidEventSelectors, "Data resource type %q is not supported. Valid types: AWS::S3::Object, AWS::Lambda::Function, AWS::DynamoDB::Table.", audit.Clip(*d.Type, 128))
			}
			for _, v := range d.Values {
				if !strings.HasPrefix(v, prefix) && !(*d.Type == "AWS::S3::Object" && v == "arn:aws:s3") {
					return audit.Errorf(audit.CodeInvalidEventSelectors, "Value %s for data resource type %s is not valid.", audit.Clip(v, 128), *d.Type)
				}
				n++
			}
		}
		if len(s.ExcludeManagementEventSources) > 0 {
			for _, src := range s.ExcludeManagementEventSources {
				if src != "kms.amazonaws.com" && src != "rdsdata.amazonaws.com" {
					return audit.Errorf(audit.CodeInvalidEventSelectors, "Excluding management event source %s is not supported. Valid values: kms.amazonaws.com, rdsdata.amazonaws.com.", audit.Clip(src, 128))
				}
			}
		}
	}
	if n > maxDataResources {
		return audit.Errorf(audit.CodeInvalidEventSelectors, "A trail can have at most %d data resources.", maxDataResources)
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
		return audit.MatchAny(t.AdvancedEventSelectors, r)
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
