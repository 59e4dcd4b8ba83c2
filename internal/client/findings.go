package client

import (
	"context"
	"encoding/json"
	"time"

	"github.com/cairn-audit/cairn/internal/detect"
)

// ListFindingsTarget is cairn's findings extension: the findings of live
// detection in the caller's account and region.
const ListFindingsTarget = "CairnFindings_20261201.ListFindings"

// FindingsPage is one page of ListFindings.
type FindingsPage struct {
	Findings  []detect.Finding
	NextToken string
}

// FindingsQuery bounds ListFindings: the events' time (zero: unbounded),
// the page size (0: the server's default) and the NextToken of the page
// before.
type FindingsQuery struct {
	Start, End time.Time
	MaxResults int
	NextToken  string
}

// ListFindings returns one page of the findings of the caller's account in
// the client's region, newest detected first.
func (c *Client) ListFindings(ctx context.Context, q FindingsQuery) (FindingsPage, error) {
	in := map[string]any{}
	if !q.Start.IsZero() {
		in["StartTime"] = q.Start.Unix()
	}
	if !q.End.IsZero() {
		in["EndTime"] = q.End.Unix()
	}
	if q.MaxResults != 0 {
		in["MaxResults"] = q.MaxResults
	}
	if q.NextToken != "" {
		in["NextToken"] = q.NextToken
	}
	body, _ := json.Marshal(in)
	var out FindingsPage
	err := c.Importer().call(ctx, ListFindingsTarget, jsonContentType, body, &out)
	return out, err
}
