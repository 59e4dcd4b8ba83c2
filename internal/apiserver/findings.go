package apiserver

import (
	"context"
	"strconv"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/awsjson"
	"github.com/cairn-audit/cairn/internal/detect"
)

// findingsPrefix is cairn's extension listing the findings of live
// detection (Sigma rules matched against every stored event;
// docs/hunting.md). No AWS service has it.
const findingsPrefix = "CairnFindings_20261201"

// findingsOps are the operations of findingsPrefix and whether each is
// read-only.
var findingsOps = map[string]bool{"ListFindings": true}

// Findings lists findings (detect.Detector).
type Findings interface {
	List(q detect.Query) detect.Page
}

type listFindingsInput struct {
	StartTime  *awsjson.Timestamp
	EndTime    *awsjson.Timestamp
	MaxResults *int
	NextToken  *string
}

type listFindingsOutput struct {
	Findings  []detect.Finding
	NextToken *string `json:",omitempty"`
}

// FindingsHandlers returns the operations of cairn's findings extension,
// for Config.FindingsHandlers. ListFindings lists the findings of the
// caller's account and the region its request was signed for, newest
// detected first, as LookupEvents scopes events; a responder's covers
// every account of the region.
func FindingsHandlers(f Findings) map[string]Handler {
	return map[string]Handler{
		"ListFindings": func(_ context.Context, req *Request) (any, error) {
			var in listFindingsInput
			if err := awsjson.Decode(req.Body, &in); err != nil {
				return nil, err
			}
			if err := maxResults("MaxResults", in.MaxResults); err != nil {
				return nil, err
			}
			q := detect.Query{Account: req.Caller.AccountID, Region: req.Caller.Region, AnyAccount: req.Caller.Responder, Limit: 50}
			if in.MaxResults != nil {
				q.Limit = *in.MaxResults
			}
			if in.StartTime != nil {
				q.Start = in.StartTime.Time()
			}
			if in.EndTime != nil {
				q.End = in.EndTime.Time()
			}
			if !q.Start.IsZero() && !q.End.IsZero() && q.End.Before(q.Start) {
				return nil, audit.Errorf(audit.CodeInvalidTimeRange, "EndTime must not be before StartTime.")
			}
			fp := scope(req.Operation, req.Caller.Principal, timeFilter(in.StartTime), timeFilter(in.EndTime))
			if in.NextToken != nil {
				key, err := req.tokens.decodeKey(fp, *in.NextToken)
				n, perr := strconv.Atoi(key)
				if err != nil || perr != nil || n <= 0 {
					return nil, audit.Errorf(audit.CodeInvalidNextToken, "The NextToken is not valid: it is malformed, or was issued for other parameters.")
				}
				q.Before = n
			}
			p := f.List(q)
			out := listFindingsOutput{Findings: p.Findings}
			if out.Findings == nil {
				out.Findings = []detect.Finding{}
			}
			if p.Next > 0 {
				tok := req.tokens.encodeKey(fp, strconv.Itoa(p.Next))
				out.NextToken = &tok
			}
			return out, nil
		},
	}
}
