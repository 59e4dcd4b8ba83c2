package apiserver

import (
	"context"
	"strings"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/awsjson"
	"github.com/cairn-audit/cairn/internal/trail"
)

// Trails is what the trail operations need of the trail feature
// (trail.Service). Its errors are *audit.Error values answered as they
// are; a trail is named by its name or ARN, and every method scopes it to
// the caller's account and region.
type Trails interface {
	Create(ctx context.Context, c audit.Principal, in trail.Settings) (trail.Trail, error)
	Update(ctx context.Context, c audit.Principal, in trail.Settings) (trail.Trail, error)
	Delete(c audit.Principal, nameOrARN string) error
	Get(c audit.Principal, nameOrARN string) (trail.Trail, error)
	// Describe returns the trails of names, leaving unknown ones out, or
	// with none the caller's (with shadows, those of other regions that
	// cover the caller's).
	Describe(c audit.Principal, names []string, shadows bool) ([]trail.Trail, error)
	// List returns a page of the caller's trails in ARN order after the
	// ARN after; more reports a next page.
	List(c audit.Principal, after string) (page []trail.Trail, more bool)
	StartLogging(ctx context.Context, c audit.Principal, nameOrARN string, at time.Time) error
	StopLogging(c audit.Principal, nameOrARN string, at time.Time) error
}

// TrailHandlers returns the handlers of the trail operations (CreateTrail,
// DescribeTrails, GetTrailStatus, StartLogging, ...), for Config.Handlers.
func TrailHandlers(t Trails) map[string]Handler {
	h := trailHandlers{t}
	return map[string]Handler{
		"CreateTrail":    h.createTrail,
		"UpdateTrail":    h.updateTrail,
		"DeleteTrail":    h.deleteTrail,
		"GetTrail":       h.getTrail,
		"DescribeTrails": h.describeTrails,
		"ListTrails":     h.listTrails,
		"GetTrailStatus": h.getTrailStatus,
		"StartLogging":   h.startLogging,
		"StopLogging":    h.stopLogging,
	}
}

type trailHandlers struct{ trails Trails }

// trailOut is the Trail shape of GetTrail and DescribeTrails.
type trailOut struct {
	Name                       string
	S3BucketName               string
	S3KeyPrefix                string `json:",omitempty"`
	IncludeGlobalServiceEvents bool
	IsMultiRegionTrail         bool
	HomeRegion                 string
	TrailARN                   string
	LogFileValidationEnabled   bool
	HasCustomEventSelectors    bool
	HasInsightSelectors        bool
	IsOrganizationTrail        bool
}

func outTrail(t *trail.Trail) trailOut {
	return trailOut{
		Name: t.Name, S3BucketName: t.S3BucketName, S3KeyPrefix: t.S3KeyPrefix,
		IncludeGlobalServiceEvents: t.IncludeGlobalServiceEvents, IsMultiRegionTrail: t.IsMultiRegionTrail,
		HomeRegion: t.HomeRegion, TrailARN: t.ARN(), LogFileValidationEnabled: t.LogFileValidationEnabled,
		HasCustomEventSelectors: t.CustomSelectors, IsOrganizationTrail: t.IsOrganizationTrail,
		HasInsightSelectors: len(t.InsightSelectors) > 0,
	}
}

// writeOut is the output of CreateTrail and UpdateTrail.
type writeOut struct {
	Name                       string
	S3BucketName               string
	S3KeyPrefix                string `json:",omitempty"`
	IncludeGlobalServiceEvents bool
	IsMultiRegionTrail         bool
	TrailARN                   string
	LogFileValidationEnabled   bool
	IsOrganizationTrail        bool
}

func outWrite(t *trail.Trail) writeOut {
	return writeOut{
		Name: t.Name, S3BucketName: t.S3BucketName, S3KeyPrefix: t.S3KeyPrefix,
		IncludeGlobalServiceEvents: t.IncludeGlobalServiceEvents, IsMultiRegionTrail: t.IsMultiRegionTrail,
		TrailARN: t.ARN(), LogFileValidationEnabled: t.LogFileValidationEnabled, IsOrganizationTrail: t.IsOrganizationTrail,
	}
}

func (h trailHandlers) createTrail(ctx context.Context, req *Request) (any, error) {
	var in trail.Settings
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	t, err := h.trails.Create(ctx, req.Caller.Principal, in)
	if err != nil {
		return nil, err
	}
	out := outWrite(&t)
	req.ResponseElements = ResponseElements(out)
	return out, nil
}

func (h trailHandlers) updateTrail(ctx context.Context, req *Request) (any, error) {
	var in trail.Settings
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	t, err := h.trails.Update(ctx, req.Caller.Principal, in)
	if err != nil {
		return nil, err
	}
	out := outWrite(&t)
	req.ResponseElements = ResponseElements(out)
	return out, nil
}

type nameInput struct {
	Name *string
}

// str returns *p, or "" for nil.
func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func (h trailHandlers) deleteTrail(_ context.Context, req *Request) (any, error) {
	var in nameInput
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	if err := h.trails.Delete(req.Caller.Principal, str(in.Name)); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (h trailHandlers) getTrail(_ context.Context, req *Request) (any, error) {
	var in nameInput
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	t, err := h.trails.Get(req.Caller.Principal, str(in.Name))
	if err != nil {
		return nil, err
	}
	return struct{ Trail trailOut }{outTrail(&t)}, nil
}

func (h trailHandlers) describeTrails(_ context.Context, req *Request) (any, error) {
	var in struct {
		TrailNameList       []string `json:"trailNameList"`
		IncludeShadowTrails *bool    `json:"includeShadowTrails"`
	}
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	shadows := in.IncludeShadowTrails == nil || *in.IncludeShadowTrails
	trails, err := h.trails.Describe(req.Caller.Principal, in.TrailNameList, shadows)
	if err != nil {
		return nil, err
	}
	out := make([]trailOut, 0, len(trails))
	for i := range trails {
		out = append(out, outTrail(&trails[i]))
	}
	return struct {
		TrailList []trailOut `json:"trailList"`
	}{out}, nil
}

func (h trailHandlers) listTrails(_ context.Context, req *Request) (any, error) {
	var in struct{ NextToken *string }
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	// The token holds the last ARN of the page, signed (tokenCodec.encodeKey):
	// trails are listed in ARN order and the next page starts after it, so
	// trails created or deleted between pages neither repeat nor shift
	// others out.
	after := ""
	fp := scope(req.Operation, req.Caller.Principal)
	if in.NextToken != nil && *in.NextToken != "" {
		var err error
		if after, err = req.tokens.decodeKey(fp, *in.NextToken); err != nil {
			return nil, tokenError(req.Operation)
		}
	}
	page, more := h.trails.List(req.Caller.Principal, after)
	type info struct{ TrailARN, Name, HomeRegion string }
	out := make([]info, 0, len(page))
	for i := range page {
		out = append(out, info{page[i].ARN(), page[i].Name, page[i].HomeRegion})
	}
	next := ""
	if more && len(out) > 0 {
		next = req.tokens.encodeKey(fp, out[len(out)-1].TrailARN)
	}
	return struct {
		Trails    []info
		NextToken string `json:",omitempty"`
	}{out, next}, nil
}

// statusOut is GetTrailStatus's output. The string times are the
// documented-as-unused members AWS still returns (ISO 8601 or "").
type statusOut struct {
	IsLogging                          bool
	LatestDeliveryError                string             `json:",omitempty"`
	LatestDigestDeliveryError          string             `json:",omitempty"`
	LatestDeliveryTime                 *awsjson.Timestamp `json:",omitempty"`
	StartLoggingTime                   *awsjson.Timestamp `json:",omitempty"`
	StopLoggingTime                    *awsjson.Timestamp `json:",omitempty"`
	LatestDigestDeliveryTime           *awsjson.Timestamp `json:",omitempty"`
	LatestDeliveryAttemptTime          string
	LatestNotificationAttemptTime      string
	LatestNotificationAttemptSucceeded string
	LatestDeliveryAttemptSucceeded     string
	TimeLoggingStarted                 string
	TimeLoggingStopped                 string
}

func stamp(t time.Time) *awsjson.Timestamp {
	if t.IsZero() {
		return nil
	}
	ts := awsjson.NewTimestamp(t)
	return &ts
}

func iso(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05Z")
}

func (h trailHandlers) getTrailStatus(_ context.Context, req *Request) (any, error) {
	var in nameInput
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	t, err := h.trails.Get(req.Caller.Principal, str(in.Name))
	if err != nil {
		// GetTrailStatus, unlike the other trail operations, names the
		// trail it did not find by ARN even when given a name (as AWS
		// words it; moto mirrors it): "Unknown trail:
		// arn:aws:cloudtrail:us-east-1:111122223333:trail/x for the user:
		// 111122223333".
		if name := str(in.Name); audit.ErrorCode(err) == audit.CodeTrailNotFound && !strings.HasPrefix(name, "arn:") {
			p := req.Caller.Principal
			arn := (&trail.Trail{Name: name, Account: p.AccountID, HomeRegion: p.Region}).ARN()
			return nil, audit.Errorf(audit.CodeTrailNotFound, "Unknown trail: %s for the user: %s", audit.Clip(arn, 512), p.AccountID)
		}
		return nil, err
	}
	out := statusOut{
		IsLogging: t.Logging, LatestDeliveryError: t.LatestDeliveryError, LatestDigestDeliveryError: t.LatestDigestDeliveryError,
		LatestDeliveryTime: stamp(t.LatestDeliveryTime), StartLoggingTime: stamp(t.StartLoggingTime),
		StopLoggingTime: stamp(t.StopLoggingTime), LatestDigestDeliveryTime: stamp(t.LatestDigestDeliveryTime),
		LatestDeliveryAttemptTime: iso(t.LatestDeliveryAttemptTime), TimeLoggingStarted: iso(t.StartLoggingTime),
		TimeLoggingStopped: iso(t.StopLoggingTime),
	}
	if !t.LatestDeliveryAttemptTime.IsZero() {
		out.LatestDeliveryAttemptSucceeded = iso(t.LatestDeliveryTime)
	}
	return out, nil
}

func (h trailHandlers) startLogging(ctx context.Context, req *Request) (any, error) {
	var in nameInput
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	if err := h.trails.StartLogging(ctx, req.Caller.Principal, str(in.Name), req.Time); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (h trailHandlers) stopLogging(_ context.Context, req *Request) (any, error) {
	var in nameInput
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	if err := h.trails.StopLogging(req.Caller.Principal, str(in.Name), req.Time); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}
