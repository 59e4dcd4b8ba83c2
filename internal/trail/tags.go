package trail

import (
	"strings"

	"github.com/cairn-audit/cairn/internal/audit"
)

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
func (s *Service) AddTags(c audit.Principal, resourceID string, add []audit.Tag) error {
	if err := audit.ValidateTags(add); err != nil {
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
		tags, err := audit.MergeTags(t.Tags, add, audit.CodeTagsLimitExceeded, "trail")
		if err != nil {
			return err
		}
		t.Tags = tags
		return nil
	})
}

// RemoveTags removes tags from the trail of ARN resourceID: a tag with a
// value only if the value matches.
func (s *Service) RemoveTags(c audit.Principal, resourceID string, remove []audit.Tag) error {
	return s.Registry.update(func(trails map[string]*Trail) error {
		t, err := resource(trails, c, resourceID)
		if err != nil {
			return err
		}
		if err := owns(t, c); err != nil {
			return err
		}
		t.Tags = audit.DropTags(t.Tags, remove)
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
