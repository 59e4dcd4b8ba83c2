package apiserver

import (
	"context"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/awsjson"
	"github.com/cairn-audit/cairn/internal/trail"
)

// TrailSelectors is what the selector operations need of the trail
// feature (trail.Service): a trail's event and Insights selectors. Its
// errors are *audit.Error values answered as they are.
type TrailSelectors interface {
	// PutEventSelectors replaces the trail's selectors by basic or
	// advanced ones (exactly one non-nil) and returns the trail.
	PutEventSelectors(c audit.Principal, nameOrARN string, basic []trail.EventSelector, advanced []audit.AdvancedSelector) (trail.Trail, error)
	EventSelectors(c audit.Principal, nameOrARN string) (trail.Trail, error)
	// PutInsightSelectors sets the trail's Insights selectors (none:
	// off) and returns the trail.
	PutInsightSelectors(c audit.Principal, nameOrARN string, sels []trail.InsightSelector) (trail.Trail, error)
	// InsightSelectors returns the trail; InsightNotEnabled when it has
	// no Insights selectors.
	InsightSelectors(c audit.Principal, nameOrARN string) (trail.Trail, error)
}

// EventSelectorHandlers returns the handlers of the trails' event and
// Insights selector operations, for Config.Handlers.
func EventSelectorHandlers(s TrailSelectors) map[string]Handler {
	h := selectorHandlers{s}
	return map[string]Handler{
		"PutEventSelectors":   h.putEventSelectors,
		"GetEventSelectors":   h.getEventSelectors,
		"PutInsightSelectors": h.putInsightSelectors,
		"GetInsightSelectors": h.getInsightSelectors,
	}
}

type selectorHandlers struct{ trails TrailSelectors }

type selectorsOut struct {
	TrailARN               string
	EventSelectors         []trail.EventSelector    `json:",omitempty"`
	AdvancedEventSelectors []audit.AdvancedSelector `json:",omitempty"`
}

func outSelectors(t *trail.Trail) selectorsOut {
	return selectorsOut{TrailARN: t.ARN(), EventSelectors: t.EventSelectors, AdvancedEventSelectors: t.AdvancedEventSelectors}
}

func (h selectorHandlers) putEventSelectors(_ context.Context, req *Request) (any, error) {
	var in struct {
		TrailName              *string
		EventSelectors         []trail.EventSelector
		AdvancedEventSelectors []audit.AdvancedSelector
	}
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	t, err := h.trails.PutEventSelectors(req.Caller.Principal, str(in.TrailName), in.EventSelectors, in.AdvancedEventSelectors)
	if err != nil {
		return nil, err
	}
	out := outSelectors(&t)
	req.ResponseElements = ResponseElements(out)
	return out, nil
}

func (h selectorHandlers) getEventSelectors(_ context.Context, req *Request) (any, error) {
	var in struct{ TrailName *string }
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	t, err := h.trails.EventSelectors(req.Caller.Principal, str(in.TrailName))
	if err != nil {
		return nil, err
	}
	return outSelectors(&t), nil
}

type insightsOut struct {
	TrailARN         string
	InsightSelectors []trail.InsightSelector
}

func (h selectorHandlers) putInsightSelectors(_ context.Context, req *Request) (any, error) {
	var in struct {
		TrailName           *string
		InsightSelectors    []trail.InsightSelector
		EventDataStore      *string
		InsightsDestination *string
	}
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	switch {
	case in.InsightSelectors == nil:
		return nil, audit.Errorf(audit.CodeInvalidParameter, "InsightSelectors is required.")
	case in.TrailName != nil && (in.EventDataStore != nil || in.InsightsDestination != nil):
		return nil, audit.Errorf(audit.CodeInvalidParameterCombination, "TrailName cannot be used with EventDataStore or InsightsDestination.")
	case in.EventDataStore != nil || in.InsightsDestination != nil:
		return nil, audit.Errorf(audit.CodeUnsupportedOperation, "cairn supports Insights selectors on trails only.")
	case in.TrailName == nil:
		return nil, audit.Errorf(audit.CodeInvalidParameterCombination, "TrailName or EventDataStore is required.")
	}
	t, err := h.trails.PutInsightSelectors(req.Caller.Principal, *in.TrailName, in.InsightSelectors)
	if err != nil {
		return nil, err
	}
	// The answer echoes the selectors asked for ([] turns Insights off).
	out := insightsOut{TrailARN: t.ARN(), InsightSelectors: in.InsightSelectors}
	req.ResponseElements = ResponseElements(out)
	return out, nil
}

func (h selectorHandlers) getInsightSelectors(_ context.Context, req *Request) (any, error) {
	var in struct {
		TrailName      *string
		EventDataStore *string
	}
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	switch {
	case in.TrailName != nil && in.EventDataStore != nil:
		return nil, audit.Errorf(audit.CodeInvalidParameterCombination, "TrailName and EventDataStore cannot both be specified.")
	case in.EventDataStore != nil:
		return nil, audit.Errorf(audit.CodeUnsupportedOperation, "cairn supports Insights selectors on trails only.")
	}
	t, err := h.trails.InsightSelectors(req.Caller.Principal, str(in.TrailName))
	if err != nil {
		return nil, err
	}
	return insightsOut{TrailARN: t.ARN(), InsightSelectors: t.InsightSelectors}, nil
}
