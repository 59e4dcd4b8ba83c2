package apiserver

import (
	"context"
	"errors"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/awsjson"
	"github.com/cairn-audit/cairn/internal/insights"
)

// insightsPrefix is cairn's extension for running the Insights detector
// over a server's stored history (cairn insights --endpoint-url): the
// detector runs next to the store, and the CLI starts a run and polls it.
const insightsPrefix = "CairnInsights_20251101"

// insightsOps are the operations of insightsPrefix and whether each is
// read-only.
var insightsOps = map[string]bool{"StartInsightsRun": false, "GetInsightsRun": true}

// InsightsJobs runs the detector in the background (insights.Jobs).
type InsightsJobs interface {
	Start(account, region string, opts insights.RetroOptions) (string, error)
	Get(account, region, id string) (insights.Job, bool)
}

type startInsightsRunInput struct {
	StartTime *awsjson.Timestamp
	EndTime   *awsjson.Timestamp
	DryRun    *bool
}

type startInsightsRunOutput struct {
	RunId string
}

type getInsightsRunInput struct {
	RunId *string
}

// getInsightsRunOutput says nothing of records outside the run's scope
// (the store's size is not the caller's business): what was analysed of
// the caller's account and region only.
type getInsightsRunOutput struct {
	RunId           string
	Status          string
	RecordsAnalysed int64
	LateRecords     int64
	Stored          int
	AlreadyStored   int
	Insights        []insights.Insight
	ErrorMessage    string `json:",omitempty"`
}

// InsightsHandlers returns the operations of cairn's Insights extension,
// for Config.InsightsHandlers. A run covers the caller's account and the
// region its request was signed for, as LookupEvents does.
func InsightsHandlers(j InsightsJobs) map[string]Handler {
	return map[string]Handler{
		"StartInsightsRun": func(_ context.Context, req *Request) (any, error) {
			var in startInsightsRunInput
			if err := awsjson.Decode(req.Body, &in); err != nil {
				return nil, err
			}
			var opts insights.RetroOptions
			if in.StartTime != nil {
				opts.Start = in.StartTime.Time()
			}
			if in.EndTime != nil {
				opts.End = in.EndTime.Time()
			}
			if !opts.Start.IsZero() && !opts.End.IsZero() && !opts.End.After(opts.Start) {
				return nil, audit.Errorf(audit.CodeInvalidTimeRange, "EndTime must be after StartTime.")
			}
			opts.DryRun = in.DryRun != nil && *in.DryRun
			id, err := j.Start(req.Caller.AccountID, req.Caller.Region, opts)
			if errors.Is(err, insights.ErrBusy) {
				return nil, audit.Errorf(audit.CodeThrottling, "A run of the Insights detector is already going for this account and region, or the server runs as many as it allows; try again when it has finished.")
			}
			if err != nil {
				return nil, err
			}
			return written(req, startInsightsRunOutput{RunId: id})
		},
		"GetInsightsRun": func(_ context.Context, req *Request) (any, error) {
			var in getInsightsRunInput
			if err := awsjson.Decode(req.Body, &in); err != nil {
				return nil, err
			}
			if in.RunId == nil || *in.RunId == "" {
				return nil, audit.Errorf(audit.CodeInvalidParameter, "RunId is required.")
			}
			job, ok := j.Get(req.Caller.AccountID, req.Caller.Region, *in.RunId)
			if !ok {
				return nil, audit.Errorf(audit.CodeResourceNotFound, "No Insights run %q in this account and region.", audit.Truncate(*in.RunId, 64))
			}
			out := getInsightsRunOutput{RunId: job.ID, Status: job.Status, RecordsAnalysed: job.Result.Analysed,
				LateRecords: job.Result.Late, Stored: job.Result.Stored, AlreadyStored: job.Result.Already,
				Insights: job.Result.Insights, ErrorMessage: job.Error}
			if out.Insights == nil {
				out.Insights = []insights.Insight{}
			}
			return out, nil
		},
	}
}
