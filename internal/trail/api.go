package trail

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/cairn-audit/cairn/internal/apiserver"
	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/awsjson"
	"github.com/cairn-audit/cairn/internal/bucket"
)

// API serves the trail operations of the CloudTrail API.
type API struct {
	Registry *Registry
	// Bucket returns the configured bucket of a name.
	Bucket func(name string) (bucket.Bucket, bool)
	// Feed gives StartLogging the store's last sequence number: a trail
	// delivers what is stored after it starts logging.
	Feed Feed
	// MaxPerRegion caps an account's trails in a region.
	MaxPerRegion int
	// Organization is the configured organization (nil: none).
	Organization *Organization
	// ListTrailsPageSize is the most trails a ListTrails page holds
	// (default 50; AWS does not document its own).
	ListTrailsPageSize int
}

// Handlers returns the operations API serves, for apiserver.Config.Handlers.
func (a *API) Handlers() map[string]apiserver.Handler {
	return map[string]apiserver.Handler{
		"CreateTrail":       a.createTrail,
		"UpdateTrail":       a.updateTrail,
		"DeleteTrail":       a.deleteTrail,
		"GetTrail":          a.getTrail,
		"DescribeTrails":    a.describeTrails,
		"ListTrails":        a.listTrails,
		"GetTrailStatus":    a.getTrailStatus,
		"StartLogging":      a.startLogging,
		"StopLogging":       a.stopLogging,
		"PutEventSelectors": a.putEventSelectors,
		"GetEventSelectors": a.getEventSelectors,

		"PutInsightSelectors": a.putInsightSelectors,
		"GetInsightSelectors": a.getInsightSelectors,
		"AddTags":             a.addTags,
		"RemoveTags":          a.removeTags,
		"ListTags":            a.listTags,
	}
}

// trailOut is the Trail shape of GetTrail and DescribeTrails.
type trailOut struct {
	Name                       string
	S3BucketName               string
	S3KeyPrefix                string `json:",omitempty"`
	IncludeGlobalServiceEvents bool
	IsMultiRegionTrail         bool
	HomeRegion                 string
	TrailARN                   string
	LogFileValidationEnabled   bool
	HasCustomEventSelectors    bool
	HasInsightSelectors        bool
	IsOrganizationTrail        bool
}

func outTrail(t *Trail) trailOut {
	return trailOut{
		Name: t.Name, S3BucketName: t.S3BucketName, S3KeyPrefix: t.S3KeyPrefix,
		IncludeGlobalServiceEvents: t.IncludeGlobalServiceEvents, IsMultiRegionTrail: t.IsMultiRegionTrail,
		HomeRegion: t.HomeRegion, TrailARN: t.ARN(), LogFileValidationEnabled: t.LogFileValidationEnabled,
		HasCustomEventSelectors: t.CustomSelectors, IsOrganizationTrail: t.IsOrganizationTrail,
		HasInsightSelectors: len(t.InsightSelectors) > 0,
	}
}

// writeOut is the output of CreateTrail and UpdateTrail.
type writeOut struct {
	Name                       string
	S3BucketName               string
	S3KeyPrefix                string `json:",omitempty"`
	IncludeGlobalServiceEvents bool
	IsMultiRegionTrail         bool
	TrailARN                   string
	LogFileValidationEnabled   bool
	IsOrganizationTrail        bool
}

func outWrite(t *Trail) writeOut {
	return writeOut{
		Name: t.Name, S3BucketName: t.S3BucketName, S3KeyPrefix: t.S3KeyPrefix,
		IncludeGlobalServiceEvents: t.IncludeGlobalServiceEvents, IsMultiRegionTrail: t.IsMultiRegionTrail,
		TrailARN: t.ARN(), LogFileValidationEnabled: t.LogFileValidationEnabled, IsOrganizationTrail: t.IsOrganizationTrail,
	}
}

// trailInput holds the members of CreateTrail and UpdateTrail.
type trailInput struct {
	Name                       *string
	S3BucketName               *string
	S3KeyPrefix                *string
	SnsTopicName               *string
	IncludeGlobalServiceEvents *bool
	IsMultiRegionTrail         *bool
	EnableLogFileValidation    *bool
	CloudWatchLogsLogGroupArn  *string
	CloudWatchLogsRoleArn      *string
	KmsKeyId                   *string
	IsOrganizationTrail        *bool
	TagsList                   []Tag
}

// unsupported answers the members cairn does not implement: an error that
// names them, never a trail that silently lacks them.
func (in *trailInput) unsupported() error {
	for name, v := range map[string]*string{"SnsTopicName": in.SnsTopicName, "CloudWatchLogsLogGroupArn": in.CloudWatchLogsLogGroupArn,
		"CloudWatchLogsRoleArn": in.CloudWatchLogsRoleArn, "KmsKeyId": in.KmsKeyId} {
		if v != nil && *v != "" {
			return audit.Errorf("UnsupportedOperation", "cairn does not support %s on trails yet.", name)
		}
	}
	return nil
}

// organization checks IsOrganizationTrail for caller c: only the
// organization's management account makes organization trails.
func (a *API) organization(in *trailInput, c apiserver.Caller) error {
	if in.IsOrganizationTrail == nil || !*in.IsOrganizationTrail {
		return nil
	}
	switch {
	case a.Organization == nil || !a.Organization.has(c.AccountID):
		return audit.Errorf("OrganizationsNotInUse", "This account is not a member of an organization.")
	case a.Organization.ManagementAccount != c.AccountID:
		return audit.Errorf("NotOrganizationMasterAccount", "The request must be made from the management account of the organization.")
	}
	return nil
}

const maxPrefixLen = 200

// apply sets the trail's members from in, validating them.
func (a *API) apply(ctx context.Context, t *Trail, in *trailInput) error {
	if in.S3BucketName != nil {
		if err := a.checkBucket(ctx, *in.S3BucketName); err != nil {
			return err
		}
		t.S3BucketName = *in.S3BucketName
	}
	if in.S3KeyPrefix != nil {
		p := *in.S3KeyPrefix
		if len(p) > maxPrefixLen || strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//") || (p != "" && !bucket.ValidKey(p)) {
			return audit.Errorf("InvalidS3Prefix", "Invalid S3 prefix: %s", clip(p))
		}
		t.S3KeyPrefix = p
	}
	if in.IncludeGlobalServiceEvents != nil {
		t.IncludeGlobalServiceEvents = *in.IncludeGlobalServiceEvents
	}
	if in.IsMultiRegionTrail != nil {
		t.IsMultiRegionTrail = *in.IsMultiRegionTrail
	}
	if in.EnableLogFileValidation != nil {
		t.LogFileValidationEnabled = *in.EnableLogFileValidation
	}
	if in.IsOrganizationTrail != nil {
		t.IsOrganizationTrail, t.OrganizationID, t.org = *in.IsOrganizationTrail, "", nil
		if t.IsOrganizationTrail {
			t.OrganizationID, t.org = a.Organization.ID, a.Organization
		}
	}
	if t.IsMultiRegionTrail && !t.IncludeGlobalServiceEvents {
		return audit.Errorf("InvalidParameterCombination", "Multi-Region trail must include global service events.")
	}
	return nil
}

func (a *API) checkBucket(ctx context.Context, name string) error {
	if name == "" || len(name) > 255 {
		return audit.Errorf("InvalidS3BucketName", "Invalid S3 bucket name: %s", clip(name))
	}
	b, ok := a.Bucket(name)
	if !ok {
		return audit.Errorf("S3BucketDoesNotExist", "S3 bucket %s does not exist!", clip(name))
	}
	if err := b.Check(ctx); err != nil {
		if errors.Is(err, bucket.ErrNoSuchBucket) {
			return audit.Errorf("S3BucketDoesNotExist", "S3 bucket %s does not exist!", clip(name))
		}
		return err
	}
	return nil
}

var (
	trailNameChars = regexp.MustCompile(`^[.\-_0-9a-zA-Z]+$`)
	adjacentPunct  = regexp.MustCompile(`[._-]{2}`)
	ipAddress      = regexp.MustCompile(`^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$`)
	trailARN       = regexp.MustCompile(`^arn:aws:cloudtrail:([a-z0-9-]+):(\d{12}):trail/(.+)$`)
)

// validName checks a trail name as CloudTrail does (moto's messages).
func validName(name string) error {
	switch {
	case len(name) < 3:
		return audit.Errorf("InvalidTrailName", "Trail name too short. Minimum allowed length: 3 characters. Specified name length: %d characters.", len(name))
	case len(name) > 128:
		return audit.Errorf("InvalidTrailName", "Trail name too long. Maximum allowed length: 128 characters. Specified name length: %d characters.", len(name))
	case !isAlnum(name[0]):
		return audit.Errorf("InvalidTrailName", "Trail name must starts with a letter or number.")
	case !isAlnum(name[len(name)-1]):
		return audit.Errorf("InvalidTrailName", "Trail name must ends with a letter or number.")
	case !trailNameChars.MatchString(name):
		return audit.Errorf("InvalidTrailName", "Trail name or ARN can only contain uppercase letters, lowercase letters, numbers, periods (.), hyphens (-), and underscores (_).")
	case adjacentPunct.MatchString(name):
		return audit.Errorf("InvalidTrailName", "Trail name cannot contain consecutive characters of periods (.), hyphens (-), or underscores (_).")
	case ipAddress.MatchString(name):
		return audit.Errorf("InvalidTrailName", "Trail name cannot be formatted as an IP address.")
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// find resolves a trail name or ARN for caller c. A name names a trail of
// c's account homed in c's region; an ARN any trail of c's account (a
// multi-region trail seen from another region).
func find(trails map[string]*Trail, c apiserver.Caller, nameOrARN *string, member string) (*Trail, error) {
	if nameOrARN == nil || *nameOrARN == "" {
		return nil, audit.Errorf("TrailNotProvided", "%s is required.", member)
	}
	v := *nameOrARN
	var t *Trail
	if strings.HasPrefix(v, "arn:") {
		m := trailARN.FindStringSubmatch(v)
		if m == nil {
			return nil, audit.Errorf("CloudTrailARNInvalid", "Invalid trail ARN: %s", clip(v))
		}
		if t = trails[v]; t != nil && !t.selectsAccount(c.AccountID) {
			t = nil
		}
		if t != nil && !t.Covers(c.Region) {
			t = nil
		}
	} else {
		if err := validName(v); err != nil {
			return nil, err
		}
		t = trails[(&Trail{Name: v, Account: c.AccountID, HomeRegion: c.Region}).ARN()]
	}
	if t == nil {
		return nil, audit.Errorf("TrailNotFound", "Unknown trail: %s for the user: %s", clip(v), c.AccountID)
	}
	return t, nil
}

// owns refuses to change a trail from outside its home region or from a
// member account of its organization.
func owns(t *Trail, c apiserver.Caller) error {
	if t.Account != c.AccountID {
		return audit.Errorf("NotOrganizationMasterAccount", "Organization trail %s can only be changed by the organization's management account.", t.ARN())
	}
	if t.HomeRegion != c.Region {
		return audit.Errorf("InvalidHomeRegion", "This operation must be called from the trail's home region, %s.", t.HomeRegion)
	}
	return nil
}

func (a *API) createTrail(ctx context.Context, req *apiserver.Request) (any, error) {
	var in trailInput
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	if in.Name == nil || *in.Name == "" {
		return nil, audit.Errorf("TrailNotProvided", "Name is required.")
	}
	if err := validName(*in.Name); err != nil {
		return nil, err
	}
	if in.S3BucketName == nil {
		return nil, audit.Errorf("InvalidS3BucketName", "S3BucketName is required.")
	}
	if err := in.unsupported(); err != nil {
		return nil, err
	}
	if err := a.organization(&in, req.Caller); err != nil {
		return nil, err
	}
	if len(in.TagsList) > maxTags {
		return nil, audit.Errorf("TagsLimitExceeded", "A trail can have at most %d tags.", maxTags)
	}
	if err := validTags(in.TagsList); err != nil {
		return nil, err
	}
	t := &Trail{Name: *in.Name, Account: req.Caller.AccountID, HomeRegion: req.Caller.Region,
		IncludeGlobalServiceEvents: true, EventSelectors: defaultSelectors(), Tags: in.TagsList}
	if err := a.apply(ctx, t, &in); err != nil {
		return nil, err
	}
	err := a.Registry.update(func(trails map[string]*Trail) error {
		if trails[t.ARN()] != nil {
			return audit.Errorf("TrailAlreadyExists", "Trail %s already exists for customer: %s", t.Name, t.Account)
		}
		n := 0
		for _, o := range trails {
			if o.Account == t.Account && o.HomeRegion == t.HomeRegion {
				n++
			}
		}
		if n >= a.MaxPerRegion {
			return audit.Errorf("MaximumNumberOfTrailsExceeded", "User: %s already has %d trails in %s.", t.Account, n, t.HomeRegion)
		}
		trails[t.ARN()] = t
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := outWrite(t)
	req.ResponseElements = apiserver.ResponseElements(out)
	return out, nil
}

func (a *API) updateTrail(ctx context.Context, req *apiserver.Request) (any, error) {
	var in trailInput
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	if err := in.unsupported(); err != nil {
		return nil, err
	}
	if err := a.organization(&in, req.Caller); err != nil {
		return nil, err
	}
	if in.TagsList != nil {
		return nil, audit.Errorf("InvalidParameter", "UpdateTrail does not take TagsList; use AddTags.")
	}
	var out writeOut
	err := a.Registry.update(func(trails map[string]*Trail) error {
		t, err := find(trails, req.Caller, in.Name, "Name")
		if err != nil {
			return err
		}
		if err := owns(t, req.Caller); err != nil {
			return err
		}
		if err := a.apply(ctx, t, &in); err != nil {
			return err
		}
		out = outWrite(t)
		return nil
	})
	if err != nil {
		return nil, err
	}
	req.ResponseElements = apiserver.ResponseElements(out)
	return out, nil
}

type nameInput struct {
	Name *string
}

func (a *API) deleteTrail(_ context.Context, req *apiserver.Request) (any, error) {
	var in nameInput
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	err := a.Registry.update(func(trails map[string]*Trail) error {
		t, err := find(trails, req.Caller, in.Name, "Name")
		if err != nil {
			return err
		}
		if err := owns(t, req.Caller); err != nil {
			return err
		}
		delete(trails, t.ARN())
		return nil
	})
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (a *API) getTrail(_ context.Context, req *apiserver.Request) (any, error) {
	var in nameInput
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	var out trailOut
	err := a.Registry.view(func(trails map[string]*Trail) error {
		t, err := find(trails, req.Caller, in.Name, "Name")
		if err == nil {
			out = outTrail(t)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return struct{ Trail trailOut }{out}, nil
}

func (a *API) describeTrails(_ context.Context, req *apiserver.Request) (any, error) {
	var in struct {
		TrailNameList       []string `json:"trailNameList"`
		IncludeShadowTrails *bool    `json:"includeShadowTrails"`
	}
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	shadows := in.IncludeShadowTrails == nil || *in.IncludeShadowTrails
	out := []trailOut{}
	err := a.Registry.view(func(trails map[string]*Trail) error {
		if len(in.TrailNameList) == 0 {
			for _, t := range sortedTrails(trails) {
				if t.selectsAccount(req.Caller.AccountID) && (t.HomeRegion == req.Caller.Region || shadows && t.Covers(req.Caller.Region)) {
					out = append(out, outTrail(t))
				}
			}
			return nil
		}
		for _, n := range in.TrailNameList {
			n := n
			t, err := find(trails, req.Caller, &n, "trailNameList")
			var ae *audit.Error
			if errors.As(err, &ae) && ae.Code == "TrailNotFound" {
				continue // DescribeTrails leaves unknown names out
			}
			if err != nil {
				return err
			}
			out = append(out, outTrail(t))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return struct {
		TrailList []trailOut `json:"trailList"`
	}{out}, nil
}

func (a *API) listTrails(_ context.Context, req *apiserver.Request) (any, error) {
	var in struct{ NextToken *string }
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	after := ""
	if in.NextToken != nil && *in.NextToken != "" {
		var ok bool
		if after, ok = parseListToken(*in.NextToken); !ok {
			return nil, audit.Errorf("InvalidNextToken", "Invalid NextToken.")
		}
	}
	size := a.ListTrailsPageSize
	if size <= 0 {
		size = defaultListTrailsPage
	}
	type info struct{ TrailARN, Name, HomeRegion string }
	out := []info{}
	next := ""
	a.Registry.view(func(trails map[string]*Trail) error {
		for _, t := range sortedTrails(trails) {
			if t.ARN() <= after || !t.selectsAccount(req.Caller.AccountID) {
				continue
			}
			if len(out) == size {
				next = listToken(out[len(out)-1].TrailARN)
				break
			}
			out = append(out, info{t.ARN(), t.Name, t.HomeRegion})
		}
		return nil
	})
	return struct {
		Trails    []info
		NextToken string `json:",omitempty"`
	}{out, next}, nil
}

// defaultListTrailsPage is ListTrails' page size.
const defaultListTrailsPage = 50

// listToken is ListTrails' NextToken: the last ARN of the page, in
// base64. Trails are listed in ARN order; the next page starts after it,
// so trails created or deleted between pages neither repeat nor shift
// others out. It reveals nothing a caller has not seen (an ARN from the
// page), and a forged one only moves where a caller's own listing starts.
func listToken(lastARN string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("trails/v1:" + lastARN))
}

func parseListToken(tok string) (string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(tok) > 2048 {
		return "", false
	}
	arn, ok := strings.CutPrefix(string(b), "trails/v1:")
	return arn, ok && arn != ""
}

// statusOut is GetTrailStatus's output. The string times are the
// documented-as-unused members AWS still returns (ISO 8601 or "").
type statusOut struct {
	IsLogging                          bool
	LatestDeliveryError                string             `json:",omitempty"`
	LatestDigestDeliveryError          string             `json:",omitempty"`
	LatestDeliveryTime                 *awsjson.Timestamp `json:",omitempty"`
	StartLoggingTime                   *awsjson.Timestamp `json:",omitempty"`
	StopLoggingTime                    *awsjson.Timestamp `json:",omitempty"`
	LatestDigestDeliveryTime           *awsjson.Timestamp `json:",omitempty"`
	LatestDeliveryAttemptTime          string
	LatestNotificationAttemptTime      string
	LatestNotificationAttemptSucceeded string
	LatestDeliveryAttemptSucceeded     string
	TimeLoggingStarted                 string
	TimeLoggingStopped                 string
}

func stamp(t time.Time) *awsjson.Timestamp {
	if t.IsZero() {
		return nil
	}
	ts := awsjson.NewTimestamp(t)
	return &ts
}

func iso(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05Z")
}

func (a *API) getTrailStatus(_ context.Context, req *apiserver.Request) (any, error) {
	var in nameInput
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	var out statusOut
	err := a.Registry.view(func(trails map[string]*Trail) error {
		t, err := find(trails, req.Caller, in.Name, "Name")
		if err != nil {
			return err
		}
		out = statusOut{
			IsLogging: t.Logging, LatestDeliveryError: t.LatestDeliveryError, LatestDigestDeliveryError: t.LatestDigestDeliveryError,
			LatestDeliveryTime: stamp(t.LatestDeliveryTime), StartLoggingTime: stamp(t.StartLoggingTime),
			StopLoggingTime: stamp(t.StopLoggingTime), LatestDigestDeliveryTime: stamp(t.LatestDigestDeliveryTime),
			LatestDeliveryAttemptTime: iso(t.LatestDeliveryAttemptTime), TimeLoggingStarted: iso(t.StartLoggingTime),
			TimeLoggingStopped: iso(t.StopLoggingTime),
		}
		if !t.LatestDeliveryAttemptTime.IsZero() {
			out.LatestDeliveryAttemptSucceeded = iso(t.LatestDeliveryTime)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (a *API) startLogging(ctx context.Context, req *apiserver.Request) (any, error) {
	var in nameInput
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	// Records stored from now on are the trail's to deliver.
	head, err := a.Feed.LastSeq(ctx)
	if err != nil {
		return nil, fmt.Errorf("trail: start logging: %w", err)
	}
	err = a.Registry.update(func(trails map[string]*Trail) error {
		t, err := find(trails, req.Caller, in.Name, "Name")
		if err != nil {
			return err
		}
		if err := owns(t, req.Caller); err != nil {
			return err
		}
		switch {
		case t.Logging:
		case t.Draining:
			// Records up to the stop are not all delivered yet: keep the
			// position and the start, so nothing recorded is skipped.
			if t.DeliverFrom.IsZero() {
				t.DeliverFrom = t.StartLoggingTime
			}
			t.Logging, t.Draining, t.StartLoggingTime = true, false, req.Time
		default:
			t.Logging, t.StartLoggingTime, t.DeliverFrom, t.Position = true, req.Time, req.Time, head
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (a *API) stopLogging(_ context.Context, req *apiserver.Request) (any, error) {
	var in nameInput
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	err := a.Registry.update(func(trails map[string]*Trail) error {
		t, err := find(trails, req.Caller, in.Name, "Name")
		if err != nil {
			return err
		}
		if err := owns(t, req.Caller); err != nil {
			return err
		}
		if t.Logging {
			t.Logging, t.Draining, t.StopLoggingTime = false, true, req.Time
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

type selectorsOut struct {
	TrailARN               string
	EventSelectors         []EventSelector         `json:",omitempty"`
	AdvancedEventSelectors []AdvancedEventSelector `json:",omitempty"`
}

func (a *API) putEventSelectors(_ context.Context, req *apiserver.Request) (any, error) {
	var in struct {
		TrailName              *string
		EventSelectors         []EventSelector
		AdvancedEventSelectors []AdvancedEventSelector
	}
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	switch {
	case in.EventSelectors != nil && in.AdvancedEventSelectors != nil:
		return nil, audit.Errorf("InvalidParameterCombination", "EventSelectors and AdvancedEventSelectors cannot both be specified.")
	case in.EventSelectors == nil && in.AdvancedEventSelectors == nil:
		return nil, audit.Errorf("InvalidParameterCombination", "Either EventSelectors or AdvancedEventSelectors is required.")
	}
	if err := validateBasic(in.EventSelectors); err != nil {
		return nil, err
	}
	if err := validateAdvanced(in.AdvancedEventSelectors); err != nil {
		return nil, err
	}
	for i := range in.EventSelectors {
		s := &in.EventSelectors[i]
		if s.DataResources == nil {
			s.DataResources = []DataResource{}
		}
		if s.ExcludeManagementEventSources == nil {
			s.ExcludeManagementEventSources = []string{}
		}
	}
	var out selectorsOut
	err := a.Registry.update(func(trails map[string]*Trail) error {
		t, err := find(trails, req.Caller, in.TrailName, "TrailName")
		if err != nil {
			return err
		}
		if err := owns(t, req.Caller); err != nil {
			return err
		}
		// One kind replaces the other.
		t.EventSelectors, t.AdvancedEventSelectors, t.CustomSelectors = in.EventSelectors, in.AdvancedEventSelectors, true
		out = selectorsOut{TrailARN: t.ARN(), EventSelectors: t.EventSelectors, AdvancedEventSelectors: t.AdvancedEventSelectors}
		return nil
	})
	if err != nil {
		return nil, err
	}
	req.ResponseElements = apiserver.ResponseElements(out)
	return out, nil
}

func (a *API) getEventSelectors(_ context.Context, req *apiserver.Request) (any, error) {
	var in struct{ TrailName *string }
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	var out selectorsOut
	err := a.Registry.view(func(trails map[string]*Trail) error {
		t, err := find(trails, req.Caller, in.TrailName, "TrailName")
		if err == nil {
			out = selectorsOut{TrailARN: t.ARN(), EventSelectors: t.EventSelectors, AdvancedEventSelectors: t.AdvancedEventSelectors}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
