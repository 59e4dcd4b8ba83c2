package apiserver

import (
	"context"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/awsjson"
	"github.com/cairn-audit/cairn/internal/trail"
)

// TrailTags is what the tagging operations need of the trail feature
// (trail.Service): the tags of trails named by ARN. Its errors are
// *audit.Error values answered as they are.
type TrailTags interface {
	AddTags(c audit.Principal, resourceID string, add []trail.Tag) error
	RemoveTags(c audit.Principal, resourceID string, remove []trail.Tag) error
	// Tagged returns the trails of the ARNs, in order.
	Tagged(c audit.Principal, resourceIDs []string) ([]trail.Trail, error)
}

// TrailTagHandlers returns the handlers of AddTags, RemoveTags and
// ListTags (on trails), for Config.Handlers.
func TrailTagHandlers(t TrailTags) map[string]Handler {
	h := tagHandlers{t}
	return map[string]Handler{
		"AddTags":    h.addTags,
		"RemoveTags": h.removeTags,
		"ListTags":   h.listTags,
	}
}

type tagHandlers struct{ trails TrailTags }

type tagsInput struct {
	ResourceId *string
	TagsList   []trail.Tag
}

func (h tagHandlers) addTags(_ context.Context, req *Request) (any, error) {
	var in tagsInput
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	if err := h.trails.AddTags(req.Caller.Principal, str(in.ResourceId), in.TagsList); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (h tagHandlers) removeTags(_ context.Context, req *Request) (any, error) {
	var in tagsInput
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	if err := h.trails.RemoveTags(req.Caller.Principal, str(in.ResourceId), in.TagsList); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (h tagHandlers) listTags(_ context.Context, req *Request) (any, error) {
	var in struct {
		ResourceIdList []string
		NextToken      *string
	}
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	if len(in.ResourceIdList) == 0 || len(in.ResourceIdList) > 20 {
		return nil, audit.Errorf(audit.CodeInvalidParameter, "ResourceIdList must hold 1 to 20 ARNs.")
	}
	if in.NextToken != nil && *in.NextToken != "" {
		return nil, audit.Errorf(audit.CodeInvalidToken, "Invalid NextToken.")
	}
	trails, err := h.trails.Tagged(req.Caller.Principal, in.ResourceIdList)
	if err != nil {
		return nil, err
	}
	type resourceTag struct {
		ResourceId string
		TagsList   []trail.Tag
	}
	out := make([]resourceTag, 0, len(trails))
	for i := range trails {
		tags := trails[i].Tags
		if tags == nil {
			tags = []trail.Tag{}
		}
		out = append(out, resourceTag{trails[i].ARN(), tags})
	}
	return struct{ ResourceTagList []resourceTag }{out}, nil
}
