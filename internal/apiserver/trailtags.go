package apiserver

import (
	"context"
	"strings"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/awsjson"
	"github.com/cairn-audit/cairn/internal/trail"
)

// TrailTags is what the tagging operations need of the trail feature
// (trail.Service): the tags of trails named by ARN. Its errors are
// *audit.Error values answered as they are.
type TrailTags interface {
	AddTags(c audit.Principal, resourceID string, add []audit.Tag) error
	RemoveTags(c audit.Principal, resourceID string, remove []audit.Tag) error
	// Tagged returns the trails of the ARNs, in order.
	Tagged(c audit.Principal, resourceIDs []string) ([]trail.Trail, error)
}

// LakeTags is what the tagging operations need of the Lake (lake.Lake):
// the tags of event data stores and channels named by ARN. Its errors are
// *audit.Error values answered as they are.
type LakeTags interface {
	ResourceTags(ctx context.Context, p audit.Principal, arn string) ([]audit.Tag, error)
	AddTags(ctx context.Context, p audit.Principal, arn string, add []audit.Tag) error
	RemoveTags(ctx context.Context, p audit.Principal, arn string, remove []audit.Tag) error
}

// TrailTagHandlers returns the handlers of AddTags, RemoveTags and
// ListTags on trails only, for Config.Handlers.
func TrailTagHandlers(t TrailTags) map[string]Handler { return TagHandlers(t, nil) }

// TagHandlers returns the handlers of AddTags, RemoveTags and ListTags on
// trails, event data stores and channels, for Config.Handlers. Either may
// be nil: its resources are then ResourceTypeNotSupportedException.
func TagHandlers(t TrailTags, l LakeTags) map[string]Handler {
	h := tagHandlers{t, l}
	return map[string]Handler{
		"AddTags":    h.addTags,
		"RemoveTags": h.removeTags,
		"ListTags":   h.listTags,
	}
}

type tagHandlers struct {
	trails TrailTags
	lake   LakeTags
}

type tagsInput struct {
	ResourceId *string
	TagsList   []audit.Tag
}

// Resource types a tagging call names.
const (
	tagTrail = iota
	tagLake
)

// resourceType checks a tagging call's ResourceId, an ARN
// (arn:aws:cloudtrail:region:account:type/id), and returns what holds its
// tags. An ARN of another account is CloudTrailARNInvalidException, worded
// as AWS words it ("AccountID in ARN is wrong, you can only access
// resources with AccountID ..."): cairn tells nothing about other accounts'
// resources (AddTags and RemoveTags on a trail leave it to the trail
// feature: organization trails). Types cairn does not tag (dashboards) are
// ResourceTypeNotSupportedException.
func (h tagHandlers) resourceType(p audit.Principal, id string, change bool) (int, error) {
	f := strings.SplitN(id, ":", 6)
	if len(f) != 6 || f[0] != "arn" || f[2] != "cloudtrail" {
		return 0, audit.Errorf(audit.CodeCloudTrailARNInvalid, "ARN %s is not valid.", audit.Clip(id, 256))
	}
	kind, _, _ := strings.Cut(f[5], "/")
	// A member account changing its organization's trail is told
	// NotOrganizationMasterAccount, by the trail feature.
	if f[4] != p.AccountID && (kind != "trail" || !change) {
		return 0, audit.Errorf(audit.CodeCloudTrailARNInvalid, "AccountID in ARN is wrong, you can only access resources with AccountID %s.", p.AccountID)
	}
	switch kind {
	case "trail":
		if h.trails != nil {
			return tagTrail, nil
		}
	case "eventdatastore", "channel":
		if h.lake != nil {
			return tagLake, nil
		}
	}
	return 0, audit.Errorf(audit.CodeResourceTypeNotSupported, "Resource type %s is not supported for tagging.", audit.Clip(kind, 64))
}

// checkTagsList checks a request's TagsList against the model: at most
// 200 items (the TagsList shape's max), else code (the operation's
// modeled error: AddTags TagsLimitExceeded, RemoveTags, which does not
// model it, InvalidTagParameter).
func checkTagsList(tags []audit.Tag, code audit.Code) error {
	if len(tags) > 200 {
		return audit.Errorf(code, "TagsList can hold at most 200 tags.")
	}
	return nil
}

func (h tagHandlers) addTags(ctx context.Context, req *Request) (any, error) {
	var in tagsInput
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	if err := checkTagsList(in.TagsList, audit.CodeTagsLimitExceeded); err != nil {
		return nil, err
	}
	kind, err := h.resourceType(req.Caller.Principal, str(in.ResourceId), true)
	if err != nil {
		return nil, err
	}
	if kind == tagLake {
		err = h.lake.AddTags(ctx, req.Caller.Principal, *in.ResourceId, in.TagsList)
	} else {
		err = h.trails.AddTags(req.Caller.Principal, *in.ResourceId, in.TagsList)
	}
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (h tagHandlers) removeTags(ctx context.Context, req *Request) (any, error) {
	var in tagsInput
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	if err := checkTagsList(in.TagsList, audit.CodeInvalidTagParameter); err != nil {
		return nil, err
	}
	kind, err := h.resourceType(req.Caller.Principal, str(in.ResourceId), true)
	if err != nil {
		return nil, err
	}
	if kind == tagLake {
		err = h.lake.RemoveTags(ctx, req.Caller.Principal, *in.ResourceId, in.TagsList)
	} else {
		err = h.trails.RemoveTags(req.Caller.Principal, *in.ResourceId, in.TagsList)
	}
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// maxTagResources is how many ARNs ListTags takes (AWS: 20).
const maxTagResources = 20

func (h tagHandlers) listTags(ctx context.Context, req *Request) (any, error) {
	var in struct {
		ResourceIdList []string
		NextToken      *string
	}
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	// ListTags models no InvalidParameterException: a list of no or too
	// many ARNs is CloudTrailARNInvalidException.
	if len(in.ResourceIdList) == 0 || len(in.ResourceIdList) > maxTagResources {
		return nil, audit.Errorf(audit.CodeCloudTrailARNInvalid, "ResourceIdList must hold 1 to %d ARNs.", maxTagResources)
	}
	// Every resource's tags fit one page: cairn never returns NextToken.
	if in.NextToken != nil && *in.NextToken != "" {
		return nil, audit.Errorf(audit.CodeInvalidToken, "Invalid NextToken.")
	}
	type resourceTag struct {
		ResourceId string
		TagsList   []audit.Tag
	}
	out := make([]resourceTag, 0, len(in.ResourceIdList))
	for _, id := range in.ResourceIdList {
		kind, err := h.resourceType(req.Caller.Principal, id, false)
		if err != nil {
			return nil, err
		}
		tags := []audit.Tag{}
		if kind == tagLake {
			lt, err := h.lake.ResourceTags(ctx, req.Caller.Principal, id)
			if err != nil {
				return nil, err
			}
			for _, t := range lt {
				tags = append(tags, audit.Tag{Key: t.Key, Value: t.Value})
			}
			out = append(out, resourceTag{id, tags})
			continue
		}
		trails, err := h.trails.Tagged(req.Caller.Principal, []string{id})
		if err != nil {
			return nil, err
		}
		if t := trails[0].Tags; t != nil {
			tags = t
		}
		out = append(out, resourceTag{trails[0].ARN(), tags})
	}
	return struct{ ResourceTagList []resourceTag }{out}, nil
}
