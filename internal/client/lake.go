package client

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
)

// QueryResult is a CloudTrail Lake query's result: its columns in the
// order first seen, and its rows (a nil cell is a column the row lacks).
type QueryResult struct {
	Columns []string
	Rows    [][]*string
}

// poll calls check with waits doubling from 20ms to 1s until it reports
// done or fails. When ctx ends first, it calls cancel with a context that
// outlives ctx (to stop the work on the server) and returns ctx's error.
func poll(ctx context.Context, check func() (done bool, err error), cancel func(context.Context)) error {
	for wait := 20 * time.Millisecond; ; wait = min(wait*2, time.Second) {
		done, err := check()
		if err != nil || done {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			cancel(context.WithoutCancel(ctx))
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Query runs stmt on the server: StartQuery, DescribeQuery until it ends,
// then every page of GetQueryResults. A query that fails or is cancelled
// on the server is an error with its status and message; when ctx ends
// first, the query is cancelled (CancelQuery).
func (c *Client) Query(ctx context.Context, stmt string) (*QueryResult, error) {
	ct := c.CloudTrail
	q, err := ct.StartQuery(ctx, &cloudtrail.StartQueryInput{QueryStatement: &stmt})
	if err != nil {
		return nil, err
	}
	err = poll(ctx, func() (bool, error) {
		d, err := ct.DescribeQuery(ctx, &cloudtrail.DescribeQueryInput{QueryId: q.QueryId})
		if err != nil {
			return false, err
		}
		switch d.QueryStatus {
		case types.QueryStatusFinished:
			return true, nil
		case types.QueryStatusQueued, types.QueryStatusRunning:
			return false, nil
		}
		return false, fmt.Errorf("query %s: %s: %s", aws.ToString(q.QueryId), d.QueryStatus, aws.ToString(d.ErrorMessage))
	}, func(ctx context.Context) {
		ct.CancelQuery(ctx, &cloudtrail.CancelQueryInput{QueryId: q.QueryId})
	})
	if err != nil {
		return nil, err
	}
	res := &QueryResult{}
	index := map[string]int{}
	var rows []map[string]string
	var next *string
	for {
		p, err := ct.GetQueryResults(ctx, &cloudtrail.GetQueryResultsInput{QueryId: q.QueryId, NextToken: next})
		if err != nil {
			return nil, err
		}
		for _, row := range p.QueryResultRows {
			m := map[string]string{}
			for _, cell := range row {
				for k, v := range cell {
					if _, ok := index[k]; !ok {
						index[k] = len(res.Columns)
						res.Columns = append(res.Columns, k)
					}
					m[k] = v
				}
			}
			rows = append(rows, m)
		}
		if next = p.NextToken; next == nil {
			break
		}
	}
	for _, m := range rows {
		row := make([]*string, len(res.Columns))
		for k, v := range m {
			row[index[k]] = &v
		}
		res.Rows = append(res.Rows, row)
	}
	return res, nil
}

// ImportResult is how an import ended.
type ImportResult struct {
	ID     string
	Status string // COMPLETED, FAILED, STOPPED
	// Files and Events completed; Failed entries.
	Files, Events, Failed int64
	// Failures are the import's failures when it did not complete cleanly
	// (its first page of ListImportFailures; none if that call failed).
	Failures []ImportFailure
}

// OK reports whether the import completed without failed entries.
func (r ImportResult) OK() bool {
	return r.Status == string(types.ImportStatusCompleted) && r.Failed == 0
}

// ImportFailure is one failure of an import: where, and why.
type ImportFailure struct {
	Location, Message string
}

// Import imports the files at uri (s3://BUCKET/PREFIX, or file:///PATH
// under the server's lake.import_roots) into the event data store into:
// StartImport, then GetImport until it ends. When ctx ends first, the
// import is stopped (StopImport).
func (c *Client) Import(ctx context.Context, into, uri string) (ImportResult, error) {
	ct := c.CloudTrail
	im, err := ct.StartImport(ctx, &cloudtrail.StartImportInput{Destinations: []string{into},
		ImportSource: &types.ImportSource{S3: &types.S3ImportSource{S3LocationUri: aws.String(uri),
			S3BucketRegion: aws.String("local"), S3BucketAccessRoleArn: aws.String("none")}}})
	if err != nil {
		return ImportResult{}, err
	}
	var g *cloudtrail.GetImportOutput
	err = poll(ctx, func() (bool, error) {
		var err error
		if g, err = ct.GetImport(ctx, &cloudtrail.GetImportInput{ImportId: im.ImportId}); err != nil {
			return false, err
		}
		return g.ImportStatus != types.ImportStatusInitializing && g.ImportStatus != types.ImportStatusInProgress, nil
	}, func(ctx context.Context) {
		ct.StopImport(ctx, &cloudtrail.StopImportInput{ImportId: im.ImportId})
	})
	if err != nil {
		return ImportResult{}, err
	}
	r := ImportResult{ID: aws.ToString(g.ImportId), Status: string(g.ImportStatus)}
	if st := g.ImportStatistics; st != nil {
		r.Files, r.Events, r.Failed = aws.ToInt64(st.FilesCompleted), aws.ToInt64(st.EventsCompleted), aws.ToInt64(st.FailedEntries)
	}
	if !r.OK() {
		f, err := ct.ListImportFailures(ctx, &cloudtrail.ListImportFailuresInput{ImportId: im.ImportId})
		if err == nil {
			for _, x := range f.Failures {
				r.Failures = append(r.Failures, ImportFailure{Location: aws.ToString(x.Location), Message: aws.ToString(x.ErrorMessage)})
			}
		}
	}
	return r, nil
}
