package trail

import (
	"context"
	"encoding/json"

	"github.com/cairn-audit/cairn/internal/apiserver"
	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/awsjson"
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

type insightsOut struct {
	TrailARN         string
	InsightSelectors []InsightSelector
}

func (a *API) putInsightSelectors(_ context.Context, req *apiserver.Request) (any, error) {
	var in struct {
		TrailName           *string
		InsightSelectors    []InsightSelector
		EventDataStore      *string
		InsightsDestination *string
	}
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	switch {
	case in.InsightSelectors == nil:
		return nil, audit.Errorf("InvalidParameter", "InsightSelectors is required.")
	case in.TrailName != nil && (in.EventDataStore != nil || in.InsightsDestination != nil):
		return nil, audit.Errorf("InvalidParameterCombination", "TrailName cannot be used with EventDataStore or InsightsDestination.")
	case in.EventDataStore != nil || in.InsightsDestination != nil:
		return nil, audit.Errorf("UnsupportedOperation", "cairn supports Insights selectors on trails only.")
	case in.TrailName == nil:
		return nil, audit.Errorf("InvalidParameterCombination", "TrailName or EventDataStore is required.")
	}
	seen := map[string]bool{}
	for i := range in.InsightSelectors {
		s := &in.InsightSelectors[i]
		if s.InsightType != ApiCallRateInsight && s.InsightType != ApiErrorRateInsight {
			return nil, audit.Errorf("InvalidInsightSelectors", "Insight type %q is not valid. Valid values: ApiCallRateInsight, ApiErrorRateInsight.", clip(s.InsightType))
		}
		if seen[s.InsightType] {
			return nil, audit.Errorf("InvalidInsightSelectors", "Insight type %s is specified twice.", s.InsightType)
		}
		seen[s.InsightType] = true
		for _, c := range s.EventCategories {
			if c != "Management" {
				// Data-event Insights (Data) are not analysed by cairn.
				return nil, audit.Errorf("InvalidInsightSelectors", "Event category %q is not supported for Insights on this trail. Valid values: Management.", clip(c))
			}
		}
	}
	var out insightsOut
	err := a.Registry.update(func(trails map[string]*Trail) error {
		t, err := find(trails, req.Caller, in.TrailName, "TrailName")
		if err != nil {
			return err
		}
		if err := owns(t, req.Caller); err != nil {
			return err
		}
		if len(in.InsightSelectors) > 0 && !t.logsManagementEvents() {
			return audit.Errorf("InvalidInsightSelectors", "Insights require a trail that logs management events.")
		}
		t.InsightSelectors = in.InsightSelectors
		if len(t.InsightSelectors) == 0 {
			t.InsightSelectors = nil
		}
		out = insightsOut{TrailARN: t.ARN(), InsightSelectors: in.InsightSelectors}
		return nil
	})
	if err != nil {
		return nil, err
	}
	req.ResponseElements = apiserver.ResponseElements(out)
	return out, nil
}

func (a *API) getInsightSelectors(_ context.Context, req *apiserver.Request) (any, error) {
	var in struct {
		TrailName      *string
		EventDataStore *string
	}
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	switch {
	case in.TrailName != nil && in.EventDataStore != nil:
		return nil, audit.Errorf("InvalidParameterCombination", "TrailName and EventDataStore cannot both be specified.")
	case in.EventDataStore != nil:
		return nil, audit.Errorf("UnsupportedOperation", "cairn supports Insights selectors on trails only.")
	}
	var out insightsOut
	err := a.Registry.view(func(trails map[string]*Trail) error {
		t, err := find(trails, req.Caller, in.TrailName, "TrailName")
		if err != nil {
			return err
		}
		if len(t.InsightSelectors) == 0 {
			return audit.Errorf("InsightNotEnabled", "Trail %s does not have Insights enabled. Enable Insights on the trail, and then try the request again.", t.ARN())
		}
		out = insightsOut{TrailARN: t.ARN(), InsightSelectors: t.InsightSelectors}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// logsManagementEvents reports whether some selector of t selects
// management events.
func (t *Trail) logsManagementEvents() bool {
	if len(t.AdvancedEventSelectors) > 0 {
		for _, s := range t.AdvancedEventSelectors {
			for _, f := range s.FieldSelectors {
				if *f.Field == "eventCategory" && f.matchValue(audit.CategoryManagement.String()) {
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
