package trail

import (
	"encoding/json"

	"github.com/cairn-audit/cairn/internal/audit"
)

// InsightSelector enables one Insights type on a trail.
type InsightSelector struct {
	InsightType     string   `json:"InsightType"`
	EventCategories []string `json:"EventCategories,omitempty"`
}

// Insights types (facts §6).
const (
	ApiCallRateInsight  = "ApiCallRateInsight"
	ApiErrorRateInsight = "ApiErrorRateInsight"
)

// selectsInsight reports whether t delivers the Insights record r: t has
// the record's Insights type enabled.
func (t *Trail) selectsInsight(r *audit.Record) bool {
	if len(t.InsightSelectors) == 0 {
		return false
	}
	var x struct {
		InsightDetails struct {
			InsightType string `json:"insightType"`
		} `json:"insightDetails"`
	}
	if json.Unmarshal(r.Raw, &x) != nil {
		return false
	}
	for _, s := range t.InsightSelectors {
		if s.InsightType == x.InsightDetails.InsightType {
			return true
		}
	}
	return false
}

// PutInsightSelectors sets the Insights selectors of the trail of a name
// or ARN (the member TrailName); none turns Insights off. It returns the
// trail.
func (s *Service) PutInsightSelectors(c audit.Principal, nameOrARN string, sels []InsightSelector) (Trail, error) {
	seen := map[string]bool{}
	for i := range sels {
		s := &sels[i]
		if s.InsightType != ApiCallRateInsight && s.InsightType != ApiErrorRateInsight {
			return Trail{}, audit.Errorf(audit.CodeInvalidInsightSelectors, "Insight type %q is not valid. Valid values: ApiCallRateInsight, ApiErrorRateInsight.", audit.Clip(s.InsightType, 128))
		}
		if seen[s.InsightType] {
			return Trail{}, audit.Errorf(audit.CodeInvalidInsightSelectors, "Insight type %s is specified twice.", s.InsightType)
		}
		seen[s.InsightType] = true
		for _, c := range s.EventCategories {
			if c != "Management" {
				// Data-event Insights (Data) are not analysed by cairn.
				return Trail{}, audit.Errorf(audit.CodeInvalidInsightSelectors, "Event category %q is not supported for Insights on this trail. Valid values: Management.", audit.Clip(c, 128))
			}
		}
	}
	var out Trail
	err := s.Registry.update(func(trails map[string]*Trail) error {
		t, err := find(trails, c, nameOrARN, "TrailName")
		if err != nil {
			return err
		}
		if err := owns(t, c); err != nil {
			return err
		}
		if len(sels) > 0 && !t.logsManagementEvents() {
			return audit.Errorf(audit.CodeInvalidInsightSelectors, "Insights require a trail that logs management events.")
		}
		t.InsightSelectors = sels
		if len(t.InsightSelectors) == 0 {
			t.InsightSelectors = nil
		}
		out = *t
		return nil
	})
	return out, err
}

// InsightSelectors returns the trail of a name or ARN (the member
// TrailName), for its Insights selectors; InsightNotEnabled when it has
// none.
func (s *Service) InsightSelectors(c audit.Principal, nameOrARN string) (Trail, error) {
	t, err := s.get(c, nameOrARN, "TrailName")
	if err == nil && len(t.InsightSelectors) == 0 {
		return Trail{}, audit.Errorf(audit.CodeInsightNotEnabled, "Trail %s does not have Insights enabled. Enable Insights on the trail, and then try the request again.", t.ARN())
	}
	return t, err
}

// logsManagementEvents reports whether some selector of t selects
// management events.
func (t *Trail) logsManagementEvents() bool {
	if len(t.AdvancedEventSelectors) > 0 {
		// A selector's eventCategory condition, evaluated alone on a
		// management event.
		mgmt := audit.Record{Category: audit.CategoryManagement}
		for _, s := range t.AdvancedEventSelectors {
			for _, f := range s.FieldSelectors {
				if f.Field == "eventCategory" && (&audit.AdvancedSelector{FieldSelectors: []audit.FieldSelector{f}}).Matches(&mgmt) {
					return true
				}
			}
		}
		return false
	}
	if len(t.EventSelectors) == 0 {
		return true
	}
	for _, s := range t.EventSelectors {
		if s.IncludeManagementEvents == nil || *s.IncludeManagementEvents {
			return true
		}
	}
	return false
}
