package lake

import (
	"context"
	"strings"

	"github.com/cairn-audit/cairn/internal/audit"
)

// tagsLocked returns a pointer to the tags of p's resource arn (an event
// data store or a channel ARN); l.mu is held. Errors: those of
// EventDataStore and Channel, InactiveEventDataStore (a store pending
// deletion, when active), ResourceTypeNotSupported.
func (l *Lake) tagsLocked(p audit.Principal, arn string, active bool) (*[]audit.Tag, error) {
	switch {
	case strings.Contains(arn, ":eventdatastore/"):
		s, err := l.findStoreLocked(p.AccountID, arn)
		if err != nil {
			return nil, err
		}
		if active && s.Status == StatusPendingDeletion {
			return nil, audit.Errorf(audit.CodeInactiveEventDataStore, "The event data store %s is pending deletion.", s.ID)
		}
		return &s.Tags, nil
	case strings.Contains(arn, ":channel/"):
		c, err := l.findChannelLocked(p.AccountID, arn)
		if err != nil {
			return nil, err
		}
		return &c.Tags, nil
	}
	return nil, audit.Errorf(audit.CodeResourceTypeNotSupported, "The resource type of %s is not supported.", audit.Clip(arn, 256))
}

// ResourceTags returns the tags of p's event data store or channel arn.
// Errors: those of tagsLocked.
func (l *Lake) ResourceTags(ctx context.Context, p audit.Principal, arn string) ([]audit.Tag, error) {
	l.fresh(ctx)
	l.mu.Lock()
	defer l.mu.Unlock()
	t, err := l.tagsLocked(p, arn, false)
	if err != nil {
		return nil, err
	}
	return append([]audit.Tag{}, (*t)...), nil
}

// AddTags adds tags to p's event data store or channel arn, replacing the
// values of keys it has. Errors: those of tagsLocked,
// InvalidTagParameter, TagsLimitExceeded (more than 50 tags).
func (l *Lake) AddTags(ctx context.Context, p audit.Principal, arn string, add []audit.Tag) error {
	if err := audit.ValidateTags(add); err != nil {
		return err
	}
	return l.changeTags(ctx, p, arn, func(tags []audit.Tag) ([]audit.Tag, error) {
		return audit.MergeTags(tags, add, audit.CodeTagsLimitExceeded, "resource")
	})
}

// RemoveTags removes tags from p's event data store or channel arn.
// Errors: those of tagsLocked.
func (l *Lake) RemoveTags(ctx context.Context, p audit.Principal, arn string, remove []audit.Tag) error {
	return l.changeTags(ctx, p, arn, func(tags []audit.Tag) ([]audit.Tag, error) { return audit.DropTags(tags, remove), nil })
}

func (l *Lake) changeTags(ctx context.Context, p audit.Principal, arn string, fn func([]audit.Tag) ([]audit.Tag, error)) error {
	return l.update(ctx, func() error {
		t, err := l.tagsLocked(p, arn, true)
		if err != nil {
			return err
		}
		n, err := fn(*t)
		if err != nil {
			return err
		}
		*t = n
		return nil
	})
}
