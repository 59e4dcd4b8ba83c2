package trail

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/bucket/objects"
)

// Service carries out the trail operations for a caller: it validates
// what the caller asks, scopes it to the caller's account and region, and
// changes the registry. Errors are *audit.Error values with CloudTrail's
// codes and messages (a missing trail names the request member, such as
// Name or TrailName, as CloudTrail does); the API edge (apiserver) decodes
// the wire and shapes the answers.
type Service struct {
	Registry *Registry
	// Bucket returns the configured bucket of a name.
	Bucket func(name string) (Bucket, bool)
	// Feed gives StartLogging the store's last sequence number: a trail
	// delivers what is stored after it starts logging.
	Feed Feed
	// MaxPerRegion caps an account's trails in a region.
	MaxPerRegion int
	// Organization is the configured organization (nil: none).
	Organization *audit.Organization
	// ListPageSize is the most trails a List page holds (default 50; AWS
	// does not document its own).
	ListPageSize int
}

// Settings are the members of CreateTrail and UpdateTrail; nil leaves a
// member as it is (or at its default on creation).
type Settings struct {
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
	// TagsList are the tags of a new trail (UpdateTrail refuses them).
	TagsList []audit.Tag
}

// unsupported answers the members cairn does not implement: an error that
// names them, never a trail that silently lacks them.
func (in *Settings) unsupported() error {
	for name, v := range map[string]*string{"SnsTopicName": in.SnsTopicName, "CloudWatchLogsLogGroupArn": in.CloudWatchLogsLogGroupArn,
		"CloudWatchLogsRoleArn": in.CloudWatchLogsRoleArn, "KmsKeyId": in.KmsKeyId} {
		if v != nil && *v != "" {
			return audit.Errorf(audit.CodeUnsupportedOperation, "cairn does not support %s on trails yet.", name)
		}
	}
	return nil
}

// organization checks IsOrganizationTrail for caller c: only the
// organization's management account makes organization trails.
func (s *Service) organization(in *Settings, c audit.Principal) error {
	if in.IsOrganizationTrail == nil || !*in.IsOrganizationTrail {
		return nil
	}
	return s.Organization.CheckManagement(c.AccountID)
}

const maxPrefixLen = 200

// apply sets the trail's members from in, validating them.
func (s *Service) apply(ctx context.Context, t *Trail, in *Settings) error {
	// The parameters are checked before the bucket, as AWS does: a
	// multi-Region trail without global service events is
	// InvalidParameterCombination whatever the bucket (issue 14).
	multi, global := t.IsMultiRegionTrail, t.IncludeGlobalServiceEvents
	if in.IsMultiRegionTrail != nil {
		multi = *in.IsMultiRegionTrail
	}
	if in.IncludeGlobalServiceEvents != nil {
		global = *in.IncludeGlobalServiceEvents
	}
	if multi && !global {
		return audit.Errorf(audit.CodeInvalidParameterCombination, "Multi-Region trail must include global service events.")
	}
	if in.S3BucketName != nil {
		if err := s.checkBucket(ctx, *in.S3BucketName); err != nil {
			return err
		}
		t.S3BucketName = *in.S3BucketName
	}
	if in.S3KeyPrefix != nil {
		p := *in.S3KeyPrefix
		if len(p) > maxPrefixLen || strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//") || (p != "" && !objects.ValidKey(p)) {
			return audit.Errorf(audit.CodeInvalidS3Prefix, "Invalid S3 prefix: %s", audit.Clip(p, 128))
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
			t.OrganizationID, t.org = s.Organization.ID, s.Organization
		}
	}
	return nil
}

func (s *Service) checkBucket(ctx context.Context, name string) error {
	if name == "" || len(name) > 255 {
		return audit.Errorf(audit.CodeInvalidS3BucketName, "Invalid S3 bucket name: %s", audit.Clip(name, 128))
	}
	b, ok := s.Bucket(name)
	if !ok {
		return audit.Errorf(audit.CodeS3BucketDoesNotExist, "S3 bucket %s does not exist!", audit.Clip(name, 128))
	}
	if err := b.Check(ctx); err != nil {
		if errors.Is(err, objects.ErrNoSuchBucket) {
			return audit.Errorf(audit.CodeS3BucketDoesNotExist, "S3 bucket %s does not exist!", audit.Clip(name, 128))
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
		return audit.Errorf(audit.CodeInvalidTrailName, "Trail name too short. Minimum allowed length: 3 characters. Specified name length: %d characters.", len(name))
	case len(name) > 128:
		return audit.Errorf(audit.CodeInvalidTrailName, "Trail name too long. Maximum allowed length: 128 characters. Specified name length: %d characters.", len(name))
	case !isAlnum(name[0]):
		return audit.Errorf(audit.CodeInvalidTrailName, "Trail name must starts with a letter or number.")
	case !isAlnum(name[len(name)-1]):
		return audit.Errorf(audit.CodeInvalidTrailName, "Trail name must ends with a letter or number.")
	case !trailNameChars.MatchString(name):
		return audit.Errorf(audit.CodeInvalidTrailName, "Trail name or ARN can only contain uppercase letters, lowercase letters, numbers, periods (.), hyphens (-), and underscores (_).")
	case adjacentPunct.MatchString(name):
		return audit.Errorf(audit.CodeInvalidTrailName, "Trail name cannot contain consecutive characters of periods (.), hyphens (-), or underscores (_).")
	case ipAddress.MatchString(name):
		return audit.Errorf(audit.CodeInvalidTrailName, "Trail name cannot be formatted as an IP address.")
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// find resolves a trail name or ARN for caller c. A name names a trail of
// c's account homed in c's region; an ARN any trail of c's account (a
// multi-region trail seen from another region).
func find(trails map[string]*Trail, c audit.Principal, nameOrARN, member string) (*Trail, error) {
	if nameOrARN == "" {
		return nil, audit.Errorf(audit.CodeTrailNotProvided, "%s is required.", member)
	}
	v := nameOrARN
	var t *Trail
	if strings.HasPrefix(v, "arn:") {
		m := trailARN.FindStringSubmatch(v)
		if m == nil {
			return nil, audit.Errorf(audit.CodeCloudTrailARNInvalid, "Invalid trail ARN: %s", audit.Clip(v, 128))
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
		return nil, audit.Errorf(audit.CodeTrailNotFound, "Unknown trail: %s for the user: %s", audit.Clip(v, 128), c.AccountID)
	}
	return t, nil
}

// owns refuses to change a trail from outside its home region or from a
// member account of its organization.
func owns(t *Trail, c audit.Principal) error {
	if t.Account != c.AccountID {
		return audit.Errorf(audit.CodeNotOrganizationMasterAccount, "Organization trail %s can only be changed by the organization's management account.", t.ARN())
	}
	if t.HomeRegion != c.Region {
		return audit.Errorf(audit.CodeInvalidHomeRegion, "This operation must be called from the trail's home region, %s.", t.HomeRegion)
	}
	return nil
}

// Create creates the trail in of caller c's account and region and
// returns it.
func (s *Service) Create(ctx context.Context, c audit.Principal, in Settings) (Trail, error) {
	if in.Name == nil || *in.Name == "" {
		return Trail{}, audit.Errorf(audit.CodeTrailNotProvided, "Name is required.")
	}
	if err := validName(*in.Name); err != nil {
		return Trail{}, err
	}
	if in.S3BucketName == nil {
		return Trail{}, audit.Errorf(audit.CodeInvalidS3BucketName, "S3BucketName is required.")
	}
	if err := in.unsupported(); err != nil {
		return Trail{}, err
	}
	if err := s.organization(&in, c); err != nil {
		return Trail{}, err
	}
	if len(in.TagsList) > audit.MaxTags {
		return Trail{}, audit.Errorf(audit.CodeTagsLimitExceeded, "A trail can have at most %d tags.", audit.MaxTags)
	}
	if err := audit.ValidateTags(in.TagsList); err != nil {
		return Trail{}, err
	}
	t := &Trail{Name: *in.Name, Account: c.AccountID, HomeRegion: c.Region,
		IncludeGlobalServiceEvents: true, EventSelectors: defaultSelectors(), Tags: in.TagsList}
	if err := s.apply(ctx, t, &in); err != nil {
		return Trail{}, err
	}
	err := s.Registry.update(func(trails map[string]*Trail) error {
		if trails[t.ARN()] != nil {
			return audit.Errorf(audit.CodeTrailAlreadyExists, "Trail %s already exists for customer: %s", t.Name, t.Account)
		}
		n := 0
		for _, o := range trails {
			if o.Account == t.Account && o.HomeRegion == t.HomeRegion {
				n++
			}
		}
		if n >= s.MaxPerRegion {
			return audit.Errorf(audit.CodeMaximumNumberOfTrailsExceeded, "User: %s already has %d trails in %s.", t.Account, n, t.HomeRegion)
		}
		trails[t.ARN()] = t
		return nil
	})
	if err != nil {
		return Trail{}, err
	}
	return *t, nil
}

// Update changes the members in sets of the trail in.Name (a name or ARN)
// and returns the trail.
func (s *Service) Update(ctx context.Context, c audit.Principal, in Settings) (Trail, error) {
	if err := in.unsupported(); err != nil {
		return Trail{}, err
	}
	if err := s.organization(&in, c); err != nil {
		return Trail{}, err
	}
	if in.TagsList != nil {
		return Trail{}, audit.Errorf(audit.CodeInvalidParameter, "UpdateTrail does not take TagsList; use AddTags.")
	}
	var out Trail
	err := s.Registry.update(func(trails map[string]*Trail) error {
		t, err := find(trails, c, deref(in.Name), "Name")
		if err != nil {
			return err
		}
		if err := owns(t, c); err != nil {
			return err
		}
		if err := s.apply(ctx, t, &in); err != nil {
			return err
		}
		out = *t
		return nil
	})
	return out, err
}

// Delete deletes the trail of a name or ARN.
func (s *Service) Delete(c audit.Principal, nameOrARN string) error {
	return s.Registry.update(func(trails map[string]*Trail) error {
		t, err := find(trails, c, nameOrARN, "Name")
		if err != nil {
			return err
		}
		if err := owns(t, c); err != nil {
			return err
		}
		delete(trails, t.ARN())
		return nil
	})
}

// Get returns the trail of a name or ARN (the member Name).
func (s *Service) Get(c audit.Principal, nameOrARN string) (Trail, error) {
	return s.get(c, nameOrARN, "Name")
}

func (s *Service) get(c audit.Principal, nameOrARN, member string) (Trail, error) {
	var out Trail
	err := s.Registry.view(func(trails map[string]*Trail) error {
		t, err := find(trails, c, nameOrARN, member)
		if err == nil {
			out = *t
		}
		return err
	})
	return out, err
}

// Describe returns the trails of names (names or ARNs; unknown ones are
// left out), or with no names every trail of c's account homed in c's
// region and, with shadows, those of other regions that cover it.
func (s *Service) Describe(c audit.Principal, names []string, shadows bool) ([]Trail, error) {
	out := []Trail{}
	err := s.Registry.view(func(trails map[string]*Trail) error {
		if len(names) == 0 {
			for _, t := range sortedTrails(trails) {
				if t.selectsAccount(c.AccountID) && (t.HomeRegion == c.Region || shadows && t.Covers(c.Region)) {
					out = append(out, *t)
				}
			}
			return nil
		}
		for _, n := range names {
			t, err := find(trails, c, n, "trailNameList")
			var ae *audit.Error
			if errors.As(err, &ae) && ae.Code == audit.CodeTrailNotFound {
				continue // DescribeTrails leaves unknown names out
			}
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

// List returns a page of the trails of c's account, in ARN order, after
// the ARN after ("": from the first); more reports that trails follow the
// page's last.
func (s *Service) List(c audit.Principal, after string) (page []Trail, more bool) {
	size := s.ListPageSize
	if size <= 0 {
		size = defaultListPage
	}
	page = []Trail{}
	s.Registry.view(func(trails map[string]*Trail) error {
		for _, t := range sortedTrails(trails) {
			if t.ARN() <= after || !t.selectsAccount(c.AccountID) {
				continue
			}
			if len(page) == size {
				more = true
				break
			}
			page = append(page, *t)
		}
		return nil
	})
	return page, more
}

// defaultListPage is List's page size.
const defaultListPage = 50

// StartLogging starts the trail of a name or ARN logging at time at: it
// delivers what the store holds from then on.
func (s *Service) StartLogging(ctx context.Context, c audit.Principal, nameOrARN string, at time.Time) error {
	// Records stored from now on are the trail's to deliver.
	head, err := s.Feed.LastSeq(ctx)
	if err != nil {
		return fmt.Errorf("trail: start logging: %w", err)
	}
	return s.Registry.update(func(trails map[string]*Trail) error {
		t, err := find(trails, c, nameOrARN, "Name")
		if err != nil {
			return err
		}
		if err := owns(t, c); err != nil {
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
			t.Logging, t.Draining, t.StartLoggingTime = true, false, at
		default:
			// A batch begun and not finished (a crash or a failed write
			// after its intent was saved) is still delivered from where
			// it began: the intent keeps its range's start, whatever the
			// new position (an intent saved without one gets it here).
			if t.begun() && t.Intent.From == nil {
				in, from := *t.Intent, t.Position
				in.From = &from
				t.Intent = &in
			}
			t.Logging, t.StartLoggingTime, t.DeliverFrom, t.Position = true, at, at, head
		}
		return nil
	})
}

// StopLogging stops the trail of a name or ARN logging at time at; it
// still delivers the records of events before.
func (s *Service) StopLogging(c audit.Principal, nameOrARN string, at time.Time) error {
	return s.Registry.update(func(trails map[string]*Trail) error {
		t, err := find(trails, c, nameOrARN, "Name")
		if err != nil {
			return err
		}
		if err := owns(t, c); err != nil {
			return err
		}
		if t.Logging {
			t.Logging, t.Draining, t.StopLoggingTime = false, true, at
		}
		return nil
	})
}

// PutEventSelectors replaces the event selectors of the trail of a name
// or ARN (the member TrailName) by basic or advanced ones (exactly one
// non-nil) and returns the trail.
func (s *Service) PutEventSelectors(c audit.Principal, nameOrARN string, basic []EventSelector, advanced []audit.AdvancedSelector) (Trail, error) {
	switch {
	case basic != nil && advanced != nil:
		return Trail{}, audit.Errorf(audit.CodeInvalidEventSelectors, "EventSelectors and AdvancedEventSelectors cannot both be specified.")
	case basic == nil && advanced == nil:
		return Trail{}, audit.Errorf(audit.CodeInvalidEventSelectors, "Either EventSelectors or AdvancedEventSelectors is required.")
	}
	if err := validateBasic(basic); err != nil {
		return Trail{}, err
	}
	if err := audit.ValidateSelectors(advanced, audit.ForTrail); err != nil {
		return Trail{}, err
	}
	for i := range basic {
		s := &basic[i]
		if s.DataResources == nil {
			s.DataResources = []DataResource{}
		}
		if s.ExcludeManagementEventSources == nil {
			s.ExcludeManagementEventSources = []string{}
		}
	}
	var out Trail
	err := s.Registry.update(func(trails map[string]*Trail) error {
		t, err := find(trails, c, nameOrARN, "TrailName")
		if err != nil {
			return err
		}
		if err := owns(t, c); err != nil {
			return err
		}
		// One kind replaces the other.
		t.EventSelectors, t.AdvancedEventSelectors, t.CustomSelectors = basic, advanced, true
		out = *t
		return nil
	})
	return out, err
}

// EventSelectors returns the trail of a name or ARN (the member
// TrailName), for its selectors.
func (s *Service) EventSelectors(c audit.Principal, nameOrARN string) (Trail, error) {
	return s.get(c, nameOrARN, "TrailName")
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
