package trail

import (
	"context"
	"strings"

	"github.com/cairn-audit/cairn/internal/apiserver"
	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/awsjson"
)

// maxTags is the number of tags a trail can have.
const maxTags = 50

func validTags(tags []Tag) error {
	for _, tg := range tags {
		if tg.Key == "" || len(tg.Key) > 128 || len(tg.Value) > 256 || strings.HasPrefix(tg.Key, "aws:") {
			return audit.Errorf("InvalidTagParameter", "Tag keys must be 1 to 128 characters, not starting with aws:, and values at most 256.")
		}
	}
	return nil
}

// resource resolves a tagging call's ResourceId: a trail ARN of the caller.
func resource(trails map[string]*Trail, c apiserver.Caller, id *string) (*Trail, error) {
	if id == nil || *id == "" {
		return nil, audit.Errorf("InvalidParameter", "ResourceId is required.")
	}
	if !strings.HasPrefix(*id, "arn:") {
		return nil, audit.Errorf("CloudTrailARNInvalid", "ARN %s is not valid.", clip(*id))
	}
	if strings.Contains(*id, ":eventdatastore/") || strings.Contains(*id, ":channel/") || strings.Contains(*id, ":dashboard/") {
		return nil, audit.Errorf("ResourceTypeNotSupported", "cairn tags trails only.")
	}
	t, err := find(trails, c, id, "ResourceId")
	if audit.ErrorCode(err) == "TrailNotFound" {
		return nil, audit.Errorf("ResourceNotFound", "Resource %s not found.", clip(*id))
	}
	return t, err
}

type tagsInput struct {
	ResourceId *string
	TagsList   []Tag
}

func (a *API) addTags(_ context.Context, req *apiserver.Request) (any, error) {
	var in tagsInput
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	if err := validTags(in.TagsList); err != nil {
		return nil, err
	}
	err := a.Registry.update(func(trails map[string]*Trail) error {
		t, err := resource(trails, req.Caller, in.ResourceId)
		if err != nil {
			return err
		}
		if err := owns(t, req.Caller); err != nil {
			return err
		}
		tags := append([]Tag(nil), t.Tags...)
	next:
		for _, tg := range in.TagsList {
			for i := range tags {
				if tags[i].Key == tg.Key {
					tags[i].Value = tg.Value
					continue next
				}
			}
			tags = append(tags, tg)
		}
		if len(tags) > maxTags {
			return audit.Errorf("TagsLimitExceeded", "A trail can have at most %d tags.", maxTags)
		}
		t.Tags = tags
		return nil
	})
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (a *API) removeTags(_ context.Context, req *apiserver.Request) (any, error) {
	var in tagsInput
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	err := a.Registry.update(func(trails map[string]*Trail) error {
		t, err := resource(trails, req.Caller, in.ResourceId)
		if err != nil {
			return err
		}
		if err := owns(t, req.Caller); err != nil {
			return err
		}
		var kept []Tag
		for _, tg := range t.Tags {
			drop := false
			for _, r := range in.TagsList {
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
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (a *API) listTags(_ context.Context, req *apiserver.Request) (any, error) {
	var in struct {
		ResourceIdList []string
		NextToken      *string
	}
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	if len(in.ResourceIdList) == 0 || len(in.ResourceIdList) > 20 {
		return nil, audit.Errorf("InvalidParameter", "ResourceIdList must hold 1 to 20 ARNs.")
	}
	if in.NextToken != nil && *in.NextToken != "" {
		return nil, audit.Errorf("InvalidToken", "Invalid NextToken.")
	}
	type resourceTag struct {
		ResourceId string
		TagsList   []Tag
	}
	out := []resourceTag{}
	err := a.Registry.view(func(trails map[string]*Trail) error {
		for _, id := range in.ResourceIdList {
			id := id
			t, err := resource(trails, req.Caller, &id)
			if err != nil {
				return err
			}
			tags := t.Tags
			if tags == nil {
				tags = []Tag{}
			}
			out = append(out, resourceTag{t.ARN(), tags})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return struct{ ResourceTagList []resourceTag }{out}, nil
}
