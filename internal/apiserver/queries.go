package apiserver

import (
	"context"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/awsjson"
	"github.com/cairn-audit/cairn/internal/lake"
)

// Queries is what the Lake query operations need. Errors are *audit.Error
// values with their AWS codes.
type Queries interface {
	StartQuery(ctx context.Context, p audit.Principal, statement string) (string, error)
	DescribeQuery(ctx context.Context, p audit.Principal, ref lake.QueryRef) (lake.QueryInfo, error)
	QueryResults(ctx context.Context, p audit.Principal, ref lake.QueryRef) (lake.ResultSet, error)
	CancelQuery(ctx context.Context, p audit.Principal, ref lake.QueryRef) (lake.QueryInfo, error)
	Queries(ctx context.Context, p audit.Principal, in lake.QueriesRequest) ([]lake.QueryInfo, error)
}

type queryStats struct {
	EventsMatched         int64
	EventsScanned         int64
	BytesScanned          int64
	ExecutionTimeInMillis int64
	CreationTime          awsjson.Timestamp
}

func queryHandlers(l Queries) map[string]Handler {
	return map[string]Handler{
		"StartQuery": func(ctx context.Context, req *Request) (any, error) {
			var in struct {
				QueryStatement               *string
				DeliveryS3Uri                *string
				QueryAlias                   *string
				QueryParameters              []string
				EventDataStoreOwnerAccountId *string
			}
			if err := awsjson.Decode(req.Body, &in); err != nil {
				return nil, err
			}
			if in.QueryStatement == nil {
				return nil, audit.Errorf(audit.CodeInvalidParameter, "QueryStatement is required.")
			}
			if in.DeliveryS3Uri != nil {
				return nil, audit.Errorf(audit.CodeInvalidParameter, "cairn does not deliver query results to S3 yet; omit DeliveryS3Uri.")
			}
			if in.QueryAlias != nil || len(in.QueryParameters) > 0 {
				return nil, audit.Errorf(audit.CodeInvalidParameter, "cairn does not run saved queries (QueryAlias, QueryParameters).")
			}
			id, err := l.StartQuery(ctx, req.Caller.Principal, *in.QueryStatement)
			if err != nil {
				return nil, err
			}
			return written(req, struct{ QueryId string }{id})
		},
		"DescribeQuery": func(ctx context.Context, req *Request) (any, error) {
			var in struct{ EventDataStore, QueryId, QueryAlias, RefreshId, EventDataStoreOwnerAccountId *string }
			if err := awsjson.Decode(req.Body, &in); err != nil {
				return nil, err
			}
			q, err := l.DescribeQuery(ctx, req.Caller.Principal, lake.QueryRef{ID: deref(in.QueryId), Store: deref(in.EventDataStore)})
			if err != nil {
				return nil, err
			}
			return struct {
				QueryId         string
				QueryString     string
				QueryStatus     string
				QueryStatistics queryStats
				ErrorMessage    string `json:",omitempty"`
			}{q.ID, q.Statement, q.State, queryStats{EventsMatched: q.Matched, EventsScanned: q.Scanned,
				ExecutionTimeInMillis: q.Elapsed.Milliseconds(), CreationTime: awsjson.NewTimestamp(q.Created)}, q.ErrorMessage}, nil
		},
		"GetQueryResults": func(ctx context.Context, req *Request) (any, error) {
			var in struct {
				EventDataStore, QueryId, NextToken *string
				MaxQueryResults                    *int
				EventDataStoreOwnerAccountId       *string
			}
			if err := awsjson.Decode(req.Body, &in); err != nil {
				return nil, err
			}
			if err := maxResults("MaxQueryResults", in.MaxQueryResults); err != nil {
				return nil, err
			}
			res, err := l.QueryResults(ctx, req.Caller.Principal, lake.QueryRef{ID: deref(in.QueryId), Store: deref(in.EventDataStore)})
			if err != nil {
				return nil, err
			}
			// The token is bound to the query; EventDataStore (deprecated,
			// optional) may come and go between pages.
			start, end, _, err := req.page(res.Rows, in.NextToken, in.MaxQueryResults, 1000, deref(in.QueryId))
			if err != nil {
				return nil, err
			}
			got, err := res.Page(start, end)
			if err != nil {
				return nil, err
			}
			var next *string
			if end = start + len(got); end < res.Rows {
				next = req.offsetToken(end, deref(in.QueryId))
			}
			rows := make([][]map[string]string, 0, len(got))
			for _, r := range got {
				cells := make([]map[string]string, 0, len(r))
				for i, v := range r {
					if v != nil {
						cells = append(cells, map[string]string{res.Columns[i]: *v})
					}
				}
				rows = append(rows, cells)
			}
			return struct {
				QueryStatus     string
				QueryStatistics struct{ ResultsCount, TotalResultsCount, BytesScanned int64 }
				QueryResultRows [][]map[string]string
				NextToken       *string `json:",omitempty"`
				ErrorMessage    string  `json:",omitempty"`
			}{QueryStatus: res.State, QueryStatistics: struct{ ResultsCount, TotalResultsCount, BytesScanned int64 }{int64(len(got)), int64(res.Rows), 0},
				QueryResultRows: rows, NextToken: next, ErrorMessage: res.ErrorMessage}, nil
		},
		"CancelQuery": func(ctx context.Context, req *Request) (any, error) {
			var in struct{ EventDataStore, QueryId, EventDataStoreOwnerAccountId *string }
			if err := awsjson.Decode(req.Body, &in); err != nil {
				return nil, err
			}
			q, err := l.CancelQuery(ctx, req.Caller.Principal, lake.QueryRef{ID: deref(in.QueryId), Store: deref(in.EventDataStore)})
			if err != nil {
				return nil, err
			}
			return written(req, struct{ QueryId, QueryStatus string }{q.ID, q.State})
		},
		"ListQueries": func(ctx context.Context, req *Request) (any, error) {
			var in struct {
				EventDataStore, NextToken, QueryStatus *string
				MaxResults                             *int
				StartTime, EndTime                     *awsjson.Timestamp
			}
			if err := awsjson.Decode(req.Body, &in); err != nil {
				return nil, err
			}
			if err := maxResults("MaxResults", in.MaxResults); err != nil {
				return nil, err
			}
			if in.StartTime != nil && in.EndTime != nil && in.EndTime.Time().Before(in.StartTime.Time()) {
				return nil, audit.Errorf(audit.CodeInvalidDateRange, "EndTime is before StartTime.")
			}
			list, err := l.Queries(ctx, req.Caller.Principal, lake.QueriesRequest{Store: deref(in.EventDataStore),
				State: in.QueryStatus, Start: timeOf(in.StartTime), End: timeOf(in.EndTime)})
			if err != nil {
				return nil, err
			}
			type item struct {
				QueryId      string
				QueryStatus  string
				CreationTime awsjson.Timestamp
			}
			items := make([]item, 0, len(list))
			for _, q := range list {
				items = append(items, item{q.ID, q.State, awsjson.NewTimestamp(q.Created)})
			}
			start, end, next, err := req.page(len(items), in.NextToken, in.MaxResults, 1000, deref(in.EventDataStore), deref(in.QueryStatus), timeFilter(in.StartTime), timeFilter(in.EndTime))
			if err != nil {
				return nil, err
			}
			return struct {
				Queries   []item
				NextToken *string `json:",omitempty"`
			}{items[start:end], next}, nil
		},
	}
}
