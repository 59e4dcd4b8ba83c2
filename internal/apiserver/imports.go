package apiserver

import (
	"context"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/awsjson"
	"github.com/cairn-audit/cairn/internal/lake"
)

// Imports is what the Lake import operations need. Errors are
// *audit.Error values with their AWS codes.
type Imports interface {
	StartImport(ctx context.Context, p audit.Principal, in lake.ImportRequest) (lake.Import, error)
	Import(ctx context.Context, p audit.Principal, id string) (lake.Import, error)
	StopImport(ctx context.Context, p audit.Principal, id string) (lake.Import, error)
	Imports(ctx context.Context, p audit.Principal, in lake.ImportsRequest) ([]lake.Import, error)
	ImportFailures(ctx context.Context, p audit.Principal, id string) ([]lake.ImportFailure, error)
}

type importOut struct {
	ImportId         string
	Destinations     []string
	ImportSource     importSource
	StartEventTime   *awsjson.Timestamp `json:",omitempty"`
	EndEventTime     *awsjson.Timestamp `json:",omitempty"`
	ImportStatus     string
	CreatedTimestamp awsjson.Timestamp
	UpdatedTimestamp awsjson.Timestamp
	ImportStatistics *importStats `json:",omitempty"`
}

// importSource is an import's ImportSource. cairn reads sources it is
// configured for and keeps no region or role: S3BucketRegion and
// S3BucketAccessRoleArn are left out rather than answered as "" (a value
// AWS never answers).
type importSource struct {
	S3 struct {
		S3LocationUri         string
		S3BucketRegion        string `json:",omitempty"`
		S3BucketAccessRoleArn string `json:",omitempty"`
	}
}

type importStats struct {
	PrefixesFound, PrefixesCompleted, FilesCompleted, EventsCompleted, FailedEntries int64
}

func outImport(im lake.Import, stats bool) importOut {
	o := importOut{ImportId: im.ID, Destinations: im.Destinations, ImportStatus: im.Status,
		CreatedTimestamp: awsjson.NewTimestamp(im.Created), UpdatedTimestamp: awsjson.NewTimestamp(im.Updated)}
	o.ImportSource.S3.S3LocationUri = im.Source
	if im.Start != nil {
		o.StartEventTime = ts(*im.Start)
	}
	if im.End != nil {
		o.EndEventTime = ts(*im.End)
	}
	if stats {
		o.ImportStatistics = &importStats{PrefixesFound: 1, FilesCompleted: im.Stats.Files, EventsCompleted: im.Stats.Events,
			FailedEntries: im.Stats.Failures}
		if im.Status == lake.ImportCompleted {
			o.ImportStatistics.PrefixesCompleted = 1
		}
	}
	return o
}

func timeOf(t *awsjson.Timestamp) *time.Time {
	if t == nil {
		return nil
	}
	v := t.Time()
	return &v
}

func importHandlers(l Imports) map[string]Handler {
	id := func(req *Request) (string, error) {
		var in struct{ ImportId *string }
		if err := awsjson.Decode(req.Body, &in); err != nil {
			return "", err
		}
		return deref(in.ImportId), nil
	}
	return map[string]Handler{
		"StartImport": func(ctx context.Context, req *Request) (any, error) {
			var in struct {
				Destinations []string
				ImportSource *struct {
					S3 *struct{ S3LocationUri, S3BucketRegion, S3BucketAccessRoleArn *string }
				}
				StartEventTime, EndEventTime *awsjson.Timestamp
				ImportId                     *string
			}
			if err := awsjson.Decode(req.Body, &in); err != nil {
				return nil, err
			}
			if in.ImportId != nil {
				return nil, audit.Errorf(audit.CodeInvalidParameter, "cairn does not restart imports; start a new one (imports are idempotent).")
			}
			if in.ImportSource == nil || in.ImportSource.S3 == nil || in.ImportSource.S3.S3LocationUri == nil {
				return nil, audit.Errorf(audit.CodeInvalidParameter, "ImportSource.S3.S3LocationUri is required.")
			}
			im, err := l.StartImport(ctx, req.Caller.Principal, lake.ImportRequest{Destinations: in.Destinations,
				Source: *in.ImportSource.S3.S3LocationUri, Start: timeOf(in.StartEventTime), End: timeOf(in.EndEventTime)})
			if err != nil {
				return nil, err
			}
			return written(req, outImport(im, false))
		},
		"GetImport": func(ctx context.Context, req *Request) (any, error) {
			i, err := id(req)
			if err != nil {
				return nil, err
			}
			im, err := l.Import(ctx, req.Caller.Principal, i)
			if err != nil {
				return nil, err
			}
			return outImport(im, true), nil
		},
		"StopImport": func(ctx context.Context, req *Request) (any, error) {
			i, err := id(req)
			if err != nil {
				return nil, err
			}
			im, err := l.StopImport(ctx, req.Caller.Principal, i)
			if err != nil {
				return nil, err
			}
			return written(req, outImport(im, true))
		},
		"ListImports": func(ctx context.Context, req *Request) (any, error) {
			var in struct {
				MaxResults                           *int
				Destination, ImportStatus, NextToken *string
			}
			if err := awsjson.Decode(req.Body, &in); err != nil {
				return nil, err
			}
			if err := maxResults("MaxResults", in.MaxResults); err != nil {
				return nil, err
			}
			list, err := l.Imports(ctx, req.Caller.Principal, lake.ImportsRequest{Destination: in.Destination, Status: in.ImportStatus})
			if err != nil {
				return nil, err
			}
			type item struct {
				ImportId         string
				ImportStatus     string
				Destinations     []string
				CreatedTimestamp awsjson.Timestamp
				UpdatedTimestamp awsjson.Timestamp
			}
			items := make([]item, 0, len(list))
			for _, im := range list {
				items = append(items, item{im.ID, im.Status, im.Destinations, awsjson.NewTimestamp(im.Created), awsjson.NewTimestamp(im.Updated)})
			}
			start, end, next, err := req.page(len(items), in.NextToken, in.MaxResults, 1000, deref(in.Destination), deref(in.ImportStatus))
			if err != nil {
				return nil, err
			}
			return struct {
				Imports   []item
				NextToken *string `json:",omitempty"`
			}{items[start:end], next}, nil
		},
		"ListImportFailures": func(ctx context.Context, req *Request) (any, error) {
			var in struct {
				ImportId, NextToken *string
				MaxResults          *int
			}
			if err := awsjson.Decode(req.Body, &in); err != nil {
				return nil, err
			}
			if err := maxResults("MaxResults", in.MaxResults); err != nil {
				return nil, err
			}
			fails, err := l.ImportFailures(ctx, req.Caller.Principal, deref(in.ImportId))
			if err != nil {
				return nil, err
			}
			type failure struct {
				Location, Status, ErrorType, ErrorMessage string
				LastUpdatedTime                           awsjson.Timestamp
			}
			items := make([]failure, 0, len(fails))
			for _, f := range fails {
				items = append(items, failure{f.Location, "FAILED", "FILE_ERROR", f.Message, awsjson.NewTimestamp(f.Time)})
			}
			start, end, next, err := req.page(len(items), in.NextToken, in.MaxResults, 1000, deref(in.ImportId))
			if err != nil {
				return nil, err
			}
			return struct {
				Failures  []failure
				NextToken *string `json:",omitempty"`
			}{items[start:end], next}, nil
		},
	}
}
