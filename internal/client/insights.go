package client

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cairn-audit/cairn/internal/insights"
)

// Targets of cairn's Insights extension: the detector runs inside the
// server, next to the store, as a job the client starts and polls.
const (
	StartInsightsRunTarget = "CairnInsights_20251101.StartInsightsRun"
	GetInsightsRunTarget   = "CairnInsights_20251101.GetInsightsRun"
)

// InsightsRun asks for a run of the detector over the history of the
// caller's account in the client's region.
type InsightsRun struct {
	// Start and End bound the Insights reported (zero: unbounded).
	Start, End time.Time
	// DryRun finds Insights without storing them.
	DryRun bool
	// Poll, when set, is called after every poll while the run goes.
	Poll func(elapsed time.Duration)
}

type insightsRunOutput struct {
	RunId           string
	Status          string
	RecordsAnalysed int64
	LateRecords     int64
	Stored          int
	AlreadyStored   int
	Insights        []insights.Insight
	ErrorMessage    string
}

// InsightsRunStatus is what GetInsightsRun says of a run.
type InsightsRunStatus struct {
	ID, Status string
	// Result: Records is the records analysed (the server does not say
	// how many it read of other accounts).
	Result insights.RetroResult
	Error  string
}

// StartInsights starts a run of the detector inside the server over the
// history of the caller's account in the client's region
// (StartInsightsRun) and returns its ID.
func (c *Client) StartInsights(ctx context.Context, run InsightsRun) (string, error) {
	in := map[string]any{}
	if !run.Start.IsZero() {
		in["StartTime"] = run.Start.Unix()
	}
	if !run.End.IsZero() {
		in["EndTime"] = run.End.Unix()
	}
	if run.DryRun {
		in["DryRun"] = true
	}
	body, _ := json.Marshal(in)
	var started struct{ RunId string }
	if err := c.Importer().call(ctx, StartInsightsRunTarget, jsonContentType, body, &started); err != nil {
		return "", err
	}
	return started.RunId, nil
}

// InsightsRunStatus returns the state of the caller's run id (GetInsightsRun).
func (c *Client) InsightsRunStatus(ctx context.Context, id string) (InsightsRunStatus, error) {
	body, _ := json.Marshal(map[string]string{"RunId": id})
	var out insightsRunOutput
	if err := c.Importer().call(ctx, GetInsightsRunTarget, jsonContentType, body, &out); err != nil {
		return InsightsRunStatus{}, err
	}
	return InsightsRunStatus{ID: out.RunId, Status: out.Status, Error: out.ErrorMessage,
		Result: insights.RetroResult{Records: out.RecordsAnalysed, Analysed: out.RecordsAnalysed, Late: out.LateRecords,
			Insights: out.Insights, Stored: out.Stored, Already: out.AlreadyStored}}, nil
}

// RunInsights runs the detector inside the server (StartInsights, then
// InsightsRunStatus until the run has finished) and returns what it found.
func (c *Client) RunInsights(ctx context.Context, run InsightsRun) (insights.RetroResult, error) {
	id, err := c.StartInsights(ctx, run)
	if err != nil {
		return insights.RetroResult{}, err
	}
	began := time.Now()
	wait := 100 * time.Millisecond
	for {
		st, err := c.InsightsRunStatus(ctx, id)
		if err != nil {
			return insights.RetroResult{}, err
		}
		switch st.Status {
		case insights.JobRunning:
		case insights.JobFinished:
			return st.Result, nil
		default:
			return insights.RetroResult{}, fmt.Errorf("the Insights run %s failed: %s", st.ID, st.Error)
		}
		if run.Poll != nil {
			run.Poll(time.Since(began))
		}
		if err := sleepCtx(ctx, wait); err != nil {
			return insights.RetroResult{}, err
		}
		wait = min(2*wait, time.Second)
	}
}
