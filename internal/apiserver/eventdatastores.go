package apiserver

import (
	"context"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/awsjson"
	"github.com/cairn-audit/cairn/internal/lake"
)

// EventDataStores is what the Lake event data store operations need.
// Errors are *audit.Error values with their AWS codes.
type EventDataStores interface {
	CreateEventDataStore(ctx context.Context, p audit.Principal, in lake.CreateStoreRequest) (lake.EventDataStore, error)
	EventDataStore(ctx context.Context, p audit.Principal, ref string) (lake.EventDataStore, error)
	EventDataStores(ctx context.Context, p audit.Principal) []lake.EventDataStore
	UpdateEventDataStore(ctx context.Context, p audit.Principal, in lake.UpdateStoreRequest) (lake.EventDataStore, error)
	DeleteEventDataStore(ctx context.Context, p audit.Principal, ref string) error
	RestoreEventDataStore(ctx context.Context, p audit.Principal, ref string) (lake.EventDataStore, error)
	SetIngestion(ctx context.Context, p audit.Principal, ref string, on bool) error
}

// storeOut is the shape of Create/Get/Update/RestoreEventDataStore.
type storeOut struct {
	EventDataStoreArn            string
	Name                         string
	Status                       string
	AdvancedEventSelectors       []audit.AdvancedSelector
	MultiRegionEnabled           bool
	OrganizationEnabled          bool
	RetentionPeriod              int
	TerminationProtectionEnabled bool
	BillingMode                  string
	KmsKeyId                     string `json:",omitempty"`
	CreatedTimestamp             awsjson.Timestamp
	UpdatedTimestamp             awsjson.Timestamp
}

func outStore(s lake.EventDataStore) storeOut {
	return storeOut{EventDataStoreArn: s.ARN(), Name: s.Name, Status: s.Status, AdvancedEventSelectors: s.Selectors,
		MultiRegionEnabled: s.MultiRegionEnabled, OrganizationEnabled: s.OrganizationEnabled, RetentionPeriod: s.RetentionPeriod,
		TerminationProtectionEnabled: s.TerminationProtectionEnabled, BillingMode: s.BillingMode, KmsKeyId: s.KmsKeyID,
		CreatedTimestamp: awsjson.NewTimestamp(s.Created), UpdatedTimestamp: awsjson.NewTimestamp(s.Updated)}
}

type createStoreIn struct {
	Name                         *string
	AdvancedEventSelectors       []audit.AdvancedSelector
	MultiRegionEnabled           *bool
	OrganizationEnabled          *bool
	RetentionPeriod              *int
	TerminationProtectionEnabled *bool
	TagsList                     []struct{ Key, Value *string }
	KmsKeyId                     *string
	StartIngestion               *bool
	BillingMode                  *string
}

func (in createStoreIn) request() lake.CreateStoreRequest {
	r := lake.CreateStoreRequest{Name: in.Name, Selectors: in.AdvancedEventSelectors, MultiRegionEnabled: in.MultiRegionEnabled,
		OrganizationEnabled: in.OrganizationEnabled, RetentionPeriod: in.RetentionPeriod,
		TerminationProtectionEnabled: in.TerminationProtectionEnabled, KmsKeyID: in.KmsKeyId,
		StartIngestion: in.StartIngestion, BillingMode: in.BillingMode}
	for _, t := range in.TagsList {
		r.Tags = append(r.Tags, audit.Tag{Key: deref(t.Key), Value: deref(t.Value)})
	}
	return r
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func storeHandlers(l EventDataStores) map[string]Handler {
	ref := func(req *Request) (string, error) {
		var in struct{ EventDataStore *string }
		if err := awsjson.Decode(req.Body, &in); err != nil {
			return "", err
		}
		return deref(in.EventDataStore), nil
	}
	ingestion := func(on bool) Handler {
		return func(ctx context.Context, req *Request) (any, error) {
			r, err := ref(req)
			if err != nil {
				return nil, err
			}
			if err := l.SetIngestion(ctx, req.Caller.Principal, r, on); err != nil {
				return nil, err
			}
			return struct{}{}, nil
		}
	}
	return map[string]Handler{
		"CreateEventDataStore": func(ctx context.Context, req *Request) (any, error) {
			var in createStoreIn
			if err := awsjson.Decode(req.Body, &in); err != nil {
				return nil, err
			}
			s, err := l.CreateEventDataStore(ctx, req.Caller.Principal, in.request())
			if err != nil {
				return nil, err
			}
			return written(req, outStore(s))
		},
		"GetEventDataStore": func(ctx context.Context, req *Request) (any, error) {
			r, err := ref(req)
			if err != nil {
				return nil, err
			}
			s, err := l.EventDataStore(ctx, req.Caller.Principal, r)
			if err != nil {
				return nil, err
			}
			return outStore(s), nil
		},
		"ListEventDataStores": func(ctx context.Context, req *Request) (any, error) {
			var in struct {
				NextToken  *string
				MaxResults *int
			}
			if err := awsjson.Decode(req.Body, &in); err != nil {
				return nil, err
			}
			if err := maxResults("MaxResults", in.MaxResults); err != nil {
				return nil, err
			}
			// The entries have the members of the model's EventDataStore
			// shape only: no BillingMode or KmsKeyId, which
			// GetEventDataStore answers (issue 14 item 15).
			type listItem struct {
				EventDataStoreArn            string
				Name                         string
				TerminationProtectionEnabled bool
				Status                       string
				AdvancedEventSelectors       []audit.AdvancedSelector
				MultiRegionEnabled           bool
				OrganizationEnabled          bool
				RetentionPeriod              int
				CreatedTimestamp             awsjson.Timestamp
				UpdatedTimestamp             awsjson.Timestamp
			}
			list := l.EventDataStores(ctx, req.Caller.Principal)
			items := make([]listItem, 0, len(list))
			for _, s := range list {
				items = append(items, listItem{EventDataStoreArn: s.ARN(), Name: s.Name, TerminationProtectionEnabled: s.TerminationProtectionEnabled,
					Status: s.Status, AdvancedEventSelectors: s.Selectors, MultiRegionEnabled: s.MultiRegionEnabled,
					OrganizationEnabled: s.OrganizationEnabled, RetentionPeriod: s.RetentionPeriod,
					CreatedTimestamp: awsjson.NewTimestamp(s.Created), UpdatedTimestamp: awsjson.NewTimestamp(s.Updated)})
			}
			start, end, next, err := req.page(len(items), in.NextToken, in.MaxResults, 1000)
			if err != nil {
				return nil, err
			}
			return struct {
				EventDataStores []listItem
				NextToken       *string `json:",omitempty"`
			}{items[start:end], next}, nil
		},
		"UpdateEventDataStore": func(ctx context.Context, req *Request) (any, error) {
			var in struct {
				EventDataStore *string
				createStoreIn
			}
			if err := awsjson.Decode(req.Body, &in); err != nil {
				return nil, err
			}
			s, err := l.UpdateEventDataStore(ctx, req.Caller.Principal,
				lake.UpdateStoreRequest{Store: deref(in.EventDataStore), CreateStoreRequest: in.createStoreIn.request()})
			if err != nil {
				return nil, err
			}
			return written(req, outStore(s))
		},
		"DeleteEventDataStore": func(ctx context.Context, req *Request) (any, error) {
			r, err := ref(req)
			if err != nil {
				return nil, err
			}
			if err := l.DeleteEventDataStore(ctx, req.Caller.Principal, r); err != nil {
				return nil, err
			}
			return struct{}{}, nil
		},
		"RestoreEventDataStore": func(ctx context.Context, req *Request) (any, error) {
			r, err := ref(req)
			if err != nil {
				return nil, err
			}
			s, err := l.RestoreEventDataStore(ctx, req.Caller.Principal, r)
			if err != nil {
				return nil, err
			}
			return written(req, outStore(s))
		},
		"StartEventDataStoreIngestion": ingestion(true),
		"StopEventDataStoreIngestion":  ingestion(false),
	}
}
