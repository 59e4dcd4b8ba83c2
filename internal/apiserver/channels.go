package apiserver

import (
	"context"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/awsjson"
	"github.com/cairn-audit/cairn/internal/lake"
)

// Channels is what the channel operations need. Errors are *audit.Error
// values with their AWS codes.
type Channels interface {
	CreateChannel(ctx context.Context, p audit.Principal, in lake.ChannelRequest) (lake.Channel, error)
	Channel(ctx context.Context, p audit.Principal, ref string) (lake.Channel, error)
	Channels(ctx context.Context, p audit.Principal) []lake.Channel
	UpdateChannel(ctx context.Context, p audit.Principal, in lake.UpdateChannelRequest) (lake.Channel, error)
	DeleteChannel(ctx context.Context, p audit.Principal, ref string) error
}

type channelOut struct {
	ChannelArn   string
	Name         string
	Source       string
	Destinations []lake.Destination
}

func outChannel(c lake.Channel) channelOut {
	return channelOut{c.ARN(), c.Name, c.Source, c.Destinations}
}

// ts is t as a timestamp, nil when zero.
func ts(t time.Time) *awsjson.Timestamp {
	if t.IsZero() {
		return nil
	}
	v := awsjson.NewTimestamp(t)
	return &v
}

func channelHandlers(l Channels) map[string]Handler {
	ref := func(req *Request) (string, error) {
		var in struct{ Channel *string }
		if err := awsjson.Decode(req.Body, &in); err != nil {
			return "", err
		}
		return deref(in.Channel), nil
	}
	return map[string]Handler{
		"CreateChannel": func(ctx context.Context, req *Request) (any, error) {
			var in struct {
				Name, Source *string
				Destinations []lake.Destination
				Tags         []struct{ Key, Value *string }
			}
			if err := awsjson.Decode(req.Body, &in); err != nil {
				return nil, err
			}
			r := lake.ChannelRequest{Name: in.Name, Source: in.Source, Destinations: in.Destinations}
			for _, t := range in.Tags {
				r.Tags = append(r.Tags, audit.Tag{Key: deref(t.Key), Value: deref(t.Value)})
			}
			c, err := l.CreateChannel(ctx, req.Caller.Principal, r)
			if err != nil {
				return nil, err
			}
			return written(req, outChannel(c))
		},
		"GetChannel": func(ctx context.Context, req *Request) (any, error) {
			r, err := ref(req)
			if err != nil {
				return nil, err
			}
			c, err := l.Channel(ctx, req.Caller.Principal, r)
			if err != nil {
				return nil, err
			}
			type ingestion struct {
				LatestIngestionSuccessTime    *awsjson.Timestamp `json:",omitempty"`
				LatestIngestionSuccessEventID string             `json:",omitempty"`
				LatestIngestionErrorCode      string             `json:",omitempty"`
				LatestIngestionAttemptTime    *awsjson.Timestamp `json:",omitempty"`
				LatestIngestionAttemptEventID string             `json:",omitempty"`
			}
			return struct {
				ChannelArn, Name, Source string
				SourceConfig             struct{ ApplyToAllRegions bool }
				Destinations             []lake.Destination
				IngestionStatus          ingestion
			}{ChannelArn: c.ARN(), Name: c.Name, Source: c.Source, Destinations: c.Destinations,
				IngestionStatus: ingestion{ts(c.LastSuccess), c.LastSuccessEvent, c.LastErrorCode, ts(c.LastAttempt), c.LastAttemptEvent}}, nil
		},
		"ListChannels": func(ctx context.Context, req *Request) (any, error) {
			var in struct {
				MaxResults *int
				NextToken  *string
			}
			if err := awsjson.Decode(req.Body, &in); err != nil {
				return nil, err
			}
			if err := maxResults("MaxResults", in.MaxResults); err != nil {
				return nil, err
			}
			type item struct{ ChannelArn, Name string }
			items := []item{}
			for _, c := range l.Channels(ctx, req.Caller.Principal) {
				items = append(items, item{c.ARN(), c.Name})
			}
			start, end, next, err := req.page(len(items), in.NextToken, in.MaxResults, 1000)
			if err != nil {
				return nil, err
			}
			return struct {
				Channels  []item
				NextToken *string `json:",omitempty"`
			}{items[start:end], next}, nil
		},
		"UpdateChannel": func(ctx context.Context, req *Request) (any, error) {
			var in struct {
				Channel, Name *string
				Destinations  []lake.Destination
			}
			if err := awsjson.Decode(req.Body, &in); err != nil {
				return nil, err
			}
			c, err := l.UpdateChannel(ctx, req.Caller.Principal,
				lake.UpdateChannelRequest{Channel: deref(in.Channel), Name: in.Name, Destinations: in.Destinations})
			if err != nil {
				return nil, err
			}
			return written(req, outChannel(c))
		},
		"DeleteChannel": func(ctx context.Context, req *Request) (any, error) {
			r, err := ref(req)
			if err != nil {
				return nil, err
			}
			if err := l.DeleteChannel(ctx, req.Caller.Principal, r); err != nil {
				return nil, err
			}
			return struct{}{}, nil
		},
	}
}
