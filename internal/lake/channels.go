package lake

import (
	"context"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
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
	// Tags are the channel's tags (CreateChannel's Tags, AddTags).
	Tags []audit.Tag `json:"tags,omitempty"`
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
			return nil, audit.Errorf(audit.CodeChannelARNInvalid, "The specified channel ARN is not valid.")
		}
		id = ref[i+len(":channel/"):]
	}
	if id == "" || len(ref) > 256 {
		return nil, audit.Errorf(audit.CodeChannelARNInvalid, "The specified channel ARN is not valid.")
	}
	c := l.channels[id]
	if c == nil || c.Account != account || strings.HasPrefix(ref, "arn:") && ref != c.ARN() {
		return nil, audit.Errorf(audit.CodeChannelNotFound, "The specified channel was not found.")
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
		s, err := l.findStoreLocked(account, d.Location)
		if err != nil {
			return nil, err
		}
		if !s.custom() {
			return nil, audit.Errorf(audit.CodeInvalidEventDataStoreCategory, "Channels send events to event data stores of ActivityAuditLog events; %s is not one.", s.ID)
		}
		out = append(out, Destination{Type: d.Type, Location: s.ARN()})
	}
	return out, nil
}

// ChannelRequest is what CreateChannel takes.
type ChannelRequest struct {
	Name, Source *string
	Destinations []Destination
	Tags         []audit.Tag
}

// CreateChannel creates a channel of p's account in p's region and
// returns it. Errors: InvalidParameter, those of the destinations' stores,
// InvalidEventDataStoreCategory (a destination not of ActivityAuditLog
// events), ChannelAlreadyExists, ChannelMaxLimitExceeded (25).
func (l *Lake) CreateChannel(ctx context.Context, p audit.Principal, in ChannelRequest) (Channel, error) {
	if in.Name == nil || !channelNameRE.MatchString(*in.Name) {
		return Channel{}, invalidParam("Name must be 3 to 128 characters of letters, digits, '.', '_' and '-'.")
	}
	// AWS takes Custom or the source name of a partner integration it
	// registered; cairn has no partner integrations (InvalidSource).
	if in.Source == nil || *in.Source != "Custom" {
		return Channel{}, audit.Errorf(audit.CodeInvalidSource, "Source must be Custom: cairn has no partner integrations.")
	}
	if err := audit.ValidateTags(in.Tags); err != nil {
		return Channel{}, err
	}
	tags, err := audit.MergeTags(nil, in.Tags, audit.CodeTagsLimitExceeded, "resource")
	if err != nil {
		return Channel{}, err
	}
	var out Channel
	err = l.update(ctx, func() error {
		dests, err := l.destinationsLocked(p.AccountID, in.Destinations)
		if err != nil {
			return err
		}
		n := 0
		for _, c := range l.channels {
			if c.Account == p.AccountID && c.Region == p.Region {
				if c.Name == *in.Name || c.Source == *in.Source && c.Source != "Custom" {
					return audit.Errorf(audit.CodeChannelAlreadyExists, "A channel named %s or for source %s already exists.", *in.Name, *in.Source)
				}
				n++
			}
		}
		if n >= maxChannels {
			return audit.Errorf(audit.CodeChannelMaxLimitExceeded, "Your account has the maximum number of channels (%d) in this Region.", maxChannels)
		}
		c := &Channel{ID: audit.NewID(), Account: p.AccountID, Region: p.Region, Name: *in.Name,
			Source: *in.Source, Destinations: dests, Created: l.opts.Now().UTC(), Tags: tags}
		l.channels[c.ID] = c
		out = *c
		return nil
	})
	return out, err
}

// Channel returns p's channel ref (an ARN or ID) with its ingestion
// status. Errors: ChannelARNInvalid, ChannelNotFound.
func (l *Lake) Channel(ctx context.Context, p audit.Principal, ref string) (Channel, error) {
	l.fresh(ctx)
	l.mu.Lock()
	defer l.mu.Unlock()
	c, err := l.findChannelLocked(p.AccountID, ref)
	if err != nil {
		return Channel{}, err
	}
	return *c, nil
}

// Channels returns the channels of p's account in p's region by name.
func (l *Lake) Channels(ctx context.Context, p audit.Principal) []Channel {
	l.fresh(ctx)
	l.mu.Lock()
	var list []Channel
	for _, c := range l.channels {
		if c.Account == p.AccountID && c.Region == p.Region {
			list = append(list, *c)
		}
	}
	l.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	return list
}

// UpdateChannelRequest is what UpdateChannel takes: the channel (ARN or
// ID) and what to change (nil keeps it).
type UpdateChannelRequest struct {
	Channel      string
	Name         *string
	Destinations []Destination
}

// UpdateChannel changes p's channel and returns it. Errors: those of
// Channel and CreateChannel.
func (l *Lake) UpdateChannel(ctx context.Context, p audit.Principal, in UpdateChannelRequest) (Channel, error) {
	var out Channel
	err := l.update(ctx, func() error {
		c, err := l.findChannelLocked(p.AccountID, in.Channel)
		if err != nil {
			return err
		}
		if in.Name != nil {
			if !channelNameRE.MatchString(*in.Name) {
				return invalidParam("Name must be 3 to 128 characters of letters, digits, '.', '_' and '-'.")
			}
			c.Name = *in.Name
		}
		if in.Destinations != nil {
			d, err := l.destinationsLocked(p.AccountID, in.Destinations)
			if err != nil {
				return err
			}
			c.Destinations = d
		}
		out = *c
		return nil
	})
	return out, err
}

// DeleteChannel deletes p's channel ref. Errors: those of Channel.
func (l *Lake) DeleteChannel(ctx context.Context, p audit.Principal, ref string) error {
	return l.update(ctx, func() error {
		c, err := l.findChannelLocked(p.AccountID, ref)
		if err != nil {
			return err
		}
		delete(l.channels, c.ID)
		return nil
	})
}
