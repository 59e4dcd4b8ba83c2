package lake

import (
	"context"
	"strings"

	"github.com/cairn-audit/cairn/internal/audit"
)

// Tag limits, as CloudTrail documents them for trails, event data stores
// and channels: at most 50 tags a resource, keys of 1 to 128 characters
// not starting with aws:, values of at most 256.
const (
	maxTags        = 50
	maxTagKeyLen   = 128
	maxTagValueLen = 256
)

// validTags refuses a tag AWS refuses (InvalidTagParameter).
func validTags(tags []Tag) error {
	for _, t := range tags {
		if t.Key == "" || len(t.Key) > maxTagKeyLen || len(t.Value) > maxTagValueLen || strings.HasPrefix(t.Key, "aws:") {
			return audit.Errorf(audit.CodeInvalidTagParameter, "Tag keys must be 1 to %d characters, not starting with aws:, and values at most %d.", maxTagKeyLen, maxTagValueLen)
		}
	}
	return nil
}

// mergeTags returns tags with add applied: a key it has takes the new
// value. limit is the error when the result holds more than maxTags.
func mergeTags(tags, add []Tag, limit audit.Code) ([]Tag, error) {
	out := append([]Tag(nil), tags...)
next:
	for _, a := range add {
		for i := range out {
			if out[i].Key == a.Key {
				out[i].Value = a.Value
				continue next
			}
		}
		out = append(out, a)
	}
	if len(out) > maxTags {
		return nil, audit.Errorf(limit, "A resource can have at most %d tags.", maxTags)
	}
	return out, nil
}

// dropTags returns tags without those of remove: a tag to remove with a
// value removes a tag only if the values match.
func dropTags(tags, remove []Tag) []Tag {
	var kept []Tag
	for _, t := range tags {
		drop := false
		for _, r := range remove {
			if r.Key == t.Key && (r.Value == "" || r.Value == t.Value) {
				drop = true
			}
		}
		if !drop {
			kept = append(kept, t)
		}
	}
	return kept
}

// tagsLocked returns a pointer to the tags of p's resource arn (an event
// data store or a channel ARN); l.mu is held. Errors: those of
// EventDataStore and Channel, InactiveEventDataStore (a store pending
// deletion, when active), ResourceTypeNotSupported.
func (l *Lake) tagsLocked(p audit.Principal, arn string, active bool) (*[]Tag, error) {
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
func (l *Lake) ResourceTags(ctx context.Context, p audit.Principal, arn string) ([]Tag, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, err := l.tagsLocked(p, arn, false)
	if err != nil {
		return nil, err
	}
	return append([]Tag{}, (*t)...), nil
}

// AddTags adds tags to p's event data store or channel arn, replacing the
// values of keys it has. Errors: those of tagsLocked,
// InvalidTagParameter, TagsLimitExceeded (more than 50 tags).
func (l *Lake) AddTags(ctx context.Context, p audit.Principal, arn string, add []Tag) error {
	if err := validTags(add); err != nil {
		return err
	}
	return l.changeTags(p, arn, func(tags []Tag) ([]Tag, error) { return mergeTags(tags, add, audit.CodeTagsLimitExceeded) })
}

// RemoveTags removes tags from p's event data store or channel arn.
// Errors: those of tagsLocked.
func (l *Lake) RemoveTags(ctx context.Context, p audit.Principal, arn string, remove []Tag) error {
	return l.changeTags(p, arn, func(tags []Tag) ([]Tag, error) { return dropTags(tags, remove), nil })
}

func (l *Lake) changeTags(p audit.Principal, arn string, fn func([]Tag) ([]Tag, error)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, err := l.tagsLocked(p, arn, true)
	if err != nil {
		return err
	}
	n, err := fn(*t)
	if err != nil {
		return err
	}
	old := *t
	*t = n
	if err := l.saveLocked(); err != nil {
		*t = old
		return err
	}
	return nil
}
