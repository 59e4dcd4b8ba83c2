package trail

import (
	"strings"

	"github.com/cairn-audit/cairn/internal/audit"
)

// maxTags is the number of tags a trail can have.
const maxTags = 50

func validTags(tags []Tag) error {
	for _, tg := range tags {
		if tg.Key == "" || len(tg.Key) > 128 || len(tg.Value) > 256 || strings.HasPrefix(tg.Key, "aws:") {
			return audit.Errorf(audit.CodeInvalidTagParameter, "Tag keys must be 1 to 128 characters, not starting with aws:, and values at most 256.")
		}
	}
	return nil
}

// resource resolves a tagging call's ResourceId: a trail ARN of the caller.
func resource(trails map[string]*Trail, c audit.Principal, id string) (*Trail, error) {
	if id == "" {
		return nil, audit.Errorf(audit.CodeInvalidParameter, "ResourceId is required.")
	}
	if !strings.HasPrefix(id, "arn:") {
		return nil, audit.Errorf(audit.CodeCloudTrailARNInvalid, "ARN %s is not valid.", audit.Clip(id, 128))
	}
	if strings.Contains(id, ":eventdatastore/") || strings.Contains(id, ":channel/") || strings.Contains(id, ":dashboard/") {
		return nil, audit.Errorf(audit.CodeResourceTypeNotSupported, "cairn tags trails only.")
	}
	t, err := find(trails, c, id, "ResourceId")
	if audit.ErrorCode(err) == audit.CodeTrailNotFound {
		return nil, audit.Errorf(audit.CodeResourceNotFound, "Resource %s not found.", audit.Clip(id, 128))
	}
	return t, err
}

// AddTags adds tags to the trail of ARN resourceID, replacing the values
// of keys it has.
func (s *Service) AddTags(c audit.Principal, resourceID string, add []Tag) error {
	if err := validTags(add); err != nil {
		return err
	}
	return s.Registry.update(func(trails map[string]*Trail) error {
		t, err := resource(trails, c, resourceID)
		if err != nil {
			return err
		}
		if err := owns(t, c); err != nil {
			return err
		}
		tags := append([]Tag(nil), t.Tags...)
	next:
		for _, tg := range add {
			for i := range tags {
				if tags[i].Key == tg.Key {
					tags[i].Value = tg.Value
					continue next
				}
			}
			tags = append(tags, tg)
		}
		if len(tags) > maxTags {
			return audit.Errorf(audit.CodeTagsLimitExceeded, "A trail can have at most %d tags.", maxTags)
		}
		t.Tags = tags
		return nil
	})
}

// RemoveTags removes tags from the trail of ARN resourceID: a tag with a
// value only if the value matches.
func (s *Service) RemoveTags(c audit.Principal, resourceID string, remove []Tag) error {
	return s.Registry.update(func(trails map[string]*Trail) error {
		t, err := resource(trails, c, resourceID)
		if err != nil {
			return err
		}
		if err := owns(t, c); err != nil {
			return err
		}
		var kept []Tag
		for _, tg := range t.Tags {
			drop := false
			for _, r := range remove {
				// A tag to remove with a value removes it only if the value matches.
				if r.Key == tg.Key && (r.Value == "" || r.Value == tg.Value) {
					drop = true
				}
			}
			if !drop {
				kept = append(kept, tg)
			}
		}
		t.Tags = kept
		return nil
	})
}

// Tagged returns the trails of ARNs resourceIDs, in order, for their tags.
func (s *Service) Tagged(c audit.Principal, resourceIDs []string) ([]Trail, error) {
	out := []Trail{}
	err := s.Registry.view(func(trails map[string]*Trail) error {
		for _, id := range resourceIDs {
			t, err := resource(trails, c, id)
			if err != nil {
				return err
			}
			out = append(out, *t)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
