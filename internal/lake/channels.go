package lake

import (
	"context"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/cairn-audit/cairn/internal/apiserver"
	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/awsjson"
)

const maxChannels = 25

// Channel receives custom events (PutAuditEvents) for event data stores.
type Channel struct {
	ID           string        `json:"id"`
	Account      string        `json:"account"`
	Region       string        `json:"region"`
	Name         string        `json:"name"`
	Source       string        `json:"source"`
	Destinations []Destination `json:"destinations"`
	Created      time.Time     `json:"created"`
	// Ingestion status.
	LastSuccess      time.Time `json:"lastSuccess,omitzero"`
	LastSuccessEvent string    `json:"lastSuccessEvent,omitempty"`
	LastAttempt      time.Time `json:"lastAttempt,omitzero"`
	LastAttemptEvent string    `json:"lastAttemptEvent,omitempty"`
	LastErrorCode    string    `json:"lastErrorCode,omitempty"`
}

// Destination is where a channel sends events.
type Destination struct {
	Type     string `json:"Type"`
	Location string `json:"Location"`
}

// ARN returns the channel's ARN.
func (c *Channel) ARN() string {
	return "arn:aws:cloudtrail:" + c.Region + ":" + c.Account + ":channel/" + c.ID
}

var channelNameRE = regexp.MustCompile(`^[a-zA-Z0-9._\-]{3,128}$`)

// findChannelLocked resolves a channel ARN or ID of account; l.mu is held.
func (l *Lake) findChannelLocked(account, ref string) (*Channel, error) {
	id := ref
	if strings.HasPrefix(ref, "arn:") {
		i := strings.LastIndex(ref, ":channel/")
		if i < 0 {
			return nil, audit.Errorf("ChannelARNInvalid", "The specified channel ARN is not valid.")
		}
		id = ref[i+len(":channel/"):]
	}
	if id == "" || len(ref) > 256 {
		return nil, audit.Errorf("ChannelARNInvalid", "The specified channel ARN is not valid.")
	}
	c := l.channels[id]
	if c == nil || c.Account != account || strings.HasPrefix(ref, "arn:") && ref != c.ARN() {
		return nil, audit.Errorf("ChannelNotFound", "The specified channel was not found.")
	}
	return c, nil
}

// destinationsLocked validates destinations: ActivityAuditLog stores of account.
func (l *Lake) destinationsLocked(account string, ds []Destination) ([]Destination, error) {
	if len(ds) < 1 || len(ds) > 200 {
		return nil, invalidParam("Destinations must have 1 to 200 items.")
	}
	out := make([]Destination, 0, len(ds))
	for _, d := range ds {
		if d.Type != "EVENT_DATA_STORE" {
			return nil, invalidParam("Destination Type must be EVENT_DATA_STORE.")
		}
		s, err := l.findStoreLocked(callerOf(account), d.Location)
		if err != nil {
			return nil, err
		}
		if !s.custom() {
			return nil, audit.Errorf("InvalidEventDataStoreCategory", "Channels send events to event data stores of ActivityAuditLog events; %s is not one.", s.ID)
		}
		out = append(out, Destination{Type: d.Type, Location: s.ARN()})
	}
	return out, nil
}

type channelOut struct {
	ChannelArn   string
	Name         string
	Source       string
	Destinations []Destination
}

func (l *Lake) createChannel(ctx context.Context, req *apiserver.Request) (any, error) {
	var in struct {
		Name, Source *string
		Destinations []Destination
		Tags         []struct{ Key, Value *string }
	}
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	if in.Name == nil || !channelNameRE.MatchString(*in.Name) {
		return nil, invalidParam("Name must be 3 to 128 characters of letters, digits, '.', '_' and '-'.")
	}
	if in.Source == nil || len(*in.Source) == 0 || len(*in.Source) > 256 {
		return nil, invalidParam("Source must be Custom or a partner source name.")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	dests, err := l.destinationsLocked(req.Caller.AccountID, in.Destinations)
	if err != nil {
		return nil, err
	}
	n := 0
	for _, c := range l.channels {
		if c.Account == req.Caller.AccountID && c.Region == req.Caller.Region {
			if c.Name == *in.Name || c.Source == *in.Source && c.Source != "Custom" {
				return nil, audit.Errorf("ChannelAlreadyExists", "A channel named %s or for source %s already exists.", *in.Name, *in.Source)
			}
			n++
		}
	}
	if n >= maxChannels {
		return nil, audit.Errorf("ChannelMaxLimitExceeded", "Your account has the maximum number of channels (%d) in this Region.", maxChannels)
	}
	c := &Channel{ID: newID(), Account: req.Caller.AccountID, Region: req.Caller.Region, Name: *in.Name,
		Source: *in.Source, Destinations: dests, Created: l.opts.Now().UTC()}
	l.channels[c.ID] = c
	if err := l.saveLocked(); err != nil {
		delete(l.channels, c.ID)
		return nil, err
	}
	out := channelOut{c.ARN(), c.Name, c.Source, c.Destinations}
	req.ResponseElements = apiserver.ResponseElements(out)
	return out, nil
}

func ts(t time.Time) *awsjson.Timestamp {
	if t.IsZero() {
		return nil
	}
	v := awsjson.NewTimestamp(t)
	return &v
}

func (l *Lake) getChannel(ctx context.Context, req *apiserver.Request) (any, error) {
	var in struct{ Channel *string }
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	ref := ""
	if in.Channel != nil {
		ref = *in.Channel
	}
	c, err := l.findChannelLocked(req.Caller.AccountID, ref)
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
		Destinations             []Destination
		IngestionStatus          ingestion
	}{ChannelArn: c.ARN(), Name: c.Name, Source: c.Source, Destinations: c.Destinations,
		IngestionStatus: ingestion{ts(c.LastSuccess), c.LastSuccessEvent, c.LastErrorCode, ts(c.LastAttempt), c.LastAttemptEvent}}, nil
}

func (l *Lake) listChannels(ctx context.Context, req *apiserver.Request) (any, error) {
	var in struct {
		MaxResults *int
		NextToken  *string
	}
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	if in.MaxResults != nil && (*in.MaxResults < 1 || *in.MaxResults > 1000) {
		return nil, audit.Errorf("InvalidMaxResults", "MaxResults must be between 1 and 1000.")
	}
	type item struct{ ChannelArn, Name string }
	l.mu.Lock()
	var items []item
	for _, c := range l.channels {
		if c.Account == req.Caller.AccountID && c.Region == req.Caller.Region {
			items = append(items, item{c.ARN(), c.Name})
		}
	}
	l.mu.Unlock()
	sort.Slice(items, func(i, j int) bool { return items[i].Name < items[j].Name })
	start, end, next, err := page(len(items), in.NextToken, in.MaxResults, 1000)
	if err != nil {
		return nil, err
	}
	if items == nil {
		items = []item{}
	}
	return struct {
		Channels  []item
		NextToken *string `json:",omitempty"`
	}{items[start:end], next}, nil
}

func (l *Lake) updateChannel(ctx context.Context, req *apiserver.Request) (any, error) {
	var in struct {
		Channel, Name *string
		Destinations  []Destination
	}
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	ref := ""
	if in.Channel != nil {
		ref = *in.Channel
	}
	c, err := l.findChannelLocked(req.Caller.AccountID, ref)
	if err != nil {
		return nil, err
	}
	old := *c
	if in.Name != nil {
		if !channelNameRE.MatchString(*in.Name) {
			return nil, invalidParam("Name must be 3 to 128 characters of letters, digits, '.', '_' and '-'.")
		}
		c.Name = *in.Name
	}
	if in.Destinations != nil {
		d, err := l.destinationsLocked(req.Caller.AccountID, in.Destinations)
		if err != nil {
			return nil, err
		}
		c.Destinations = d
	}
	if err := l.saveLocked(); err != nil {
		*c = old
		return nil, err
	}
	out := channelOut{c.ARN(), c.Name, c.Source, c.Destinations}
	req.ResponseElements = apiserver.ResponseElements(out)
	return out, nil
}

func (l *Lake) deleteChannel(ctx context.Context, req *apiserver.Request) (any, error) {
	var in struct{ Channel *string }
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	ref := ""
	if in.Channel != nil {
		ref = *in.Channel
	}
	c, err := l.findChannelLocked(req.Caller.AccountID, ref)
	if err != nil {
		return nil, err
	}
	delete(l.channels, c.ID)
	if err := l.saveLocked(); err != nil {
		l.channels[c.ID] = c
		return nil, err
	}
	return struct{}{}, nil
}
