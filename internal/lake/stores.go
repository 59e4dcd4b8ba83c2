package lake

import (
	"context"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/cairn-audit/cairn/internal/apiserver"
	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/awsjson"
)

// Store statuses (the model's EventDataStoreStatus).
const (
	StatusCreated         = "CREATED"
	StatusEnabled         = "ENABLED"
	StatusPendingDeletion = "PENDING_DELETION"
	StatusStopped         = "STOPPED_INGESTION"
)

// pendingDeletion is how long a deleted store can be restored.
const pendingDeletion = 7 * 24 * time.Hour

// EventDataStore is one event data store.
type EventDataStore struct {
	ID                           string                  `json:"id"`
	Account                      string                  `json:"account"`
	Region                       string                  `json:"region"`
	Name                         string                  `json:"name"`
	Status                       string                  `json:"status"`
	Selectors                    []AdvancedEventSelector `json:"selectors"`
	MultiRegionEnabled           bool                    `json:"multiRegion"`
	OrganizationEnabled          bool                    `json:"organization"`
	RetentionPeriod              int                     `json:"retentionDays"`
	TerminationProtectionEnabled bool                    `json:"terminationProtection"`
	BillingMode                  string                  `json:"billingMode"`
	KmsKeyID                     string                  `json:"kmsKeyId,omitempty"`
	Created                      time.Time               `json:"created"`
	Updated                      time.Time               `json:"updated"`
	// Deleted is when DeleteEventDataStore was called (PENDING_DELETION).
	Deleted time.Time `json:"deleted,omitzero"`
}

// ARN returns the store's ARN.
func (s *EventDataStore) ARN() string {
	return "arn:aws:cloudtrail:" + s.Region + ":" + s.Account + ":eventdatastore/" + s.ID
}

// category returns the one category the store holds (Management, Data,
// ActivityAuditLog, Insight...): the eventCategory its selectors ask for.
func (s *EventDataStore) category() string {
	for _, sel := range s.Selectors {
		for _, f := range sel.FieldSelectors {
			if f.Field != nil && *f.Field == "eventCategory" && len(f.Equals) > 0 {
				return f.Equals[0]
			}
		}
	}
	return "Management"
}

// custom reports whether the store holds custom (channel) events.
func (s *EventDataStore) custom() bool { return s.category() == "ActivityAuditLog" }

// selects reports whether a record of the event store flows into s.
func (s *EventDataStore) selects(r *audit.Record) bool {
	if s.Status != StatusEnabled && s.Status != StatusCreated || s.custom() {
		return false
	}
	if r.Account != s.Account || !s.MultiRegionEnabled && r.Region != s.Region {
		return false
	}
	for i := range s.Selectors {
		if s.Selectors[i].matches(r) {
			return true
		}
	}
	return false
}

// AdvancedEventSelector is an advanced event selector: every field
// selector must match.
type AdvancedEventSelector struct {
	Name           *string                 `json:"Name,omitempty"`
	FieldSelectors []AdvancedFieldSelector `json:"FieldSelectors"`
}

// AdvancedFieldSelector is one condition on one field.
type AdvancedFieldSelector struct {
	Field         *string  `json:"Field"`
	Equals        []string `json:"Equals,omitempty"`
	StartsWith    []string `json:"StartsWith,omitempty"`
	EndsWith      []string `json:"EndsWith,omitempty"`
	NotEquals     []string `json:"NotEquals,omitempty"`
	NotStartsWith []string `json:"NotStartsWith,omitempty"`
	NotEndsWith   []string `json:"NotEndsWith,omitempty"`
}

func (s *AdvancedEventSelector) matches(r *audit.Record) bool {
	for i := range s.FieldSelectors {
		if !s.FieldSelectors[i].matches(r) {
			return false
		}
	}
	return true
}

func (f *AdvancedFieldSelector) matches(r *audit.Record) bool {
	var vals []string
	switch *f.Field {
	case "eventCategory":
		vals = []string{r.Category.String()}
	case "eventSource":
		vals = []string{r.EventSource}
	case "eventName":
		vals = []string{r.EventName}
	case "readOnly":
		if r.ReadOnly != audit.Unset {
			vals = []string{r.ReadOnly.String()}
		}
	case "resources.type":
		for _, res := range r.Resources {
			vals = append(vals, res.Type)
		}
	case "resources.ARN":
		for _, res := range r.Resources {
			vals = append(vals, res.ARN)
		}
	default:
		return true
	}
	for _, v := range vals {
		if f.matchValue(v) {
			return true
		}
	}
	return false
}

func (f *AdvancedFieldSelector) matchValue(v string) bool {
	anyOf := func(l []string, test func(a string) bool) bool {
		for _, a := range l {
			if test(a) {
				return true
			}
		}
		return false
	}
	if len(f.Equals) > 0 && !anyOf(f.Equals, func(a string) bool { return v == a }) {
		return false
	}
	if len(f.StartsWith) > 0 && !anyOf(f.StartsWith, func(a string) bool { return strings.HasPrefix(v, a) }) {
		return false
	}
	if len(f.EndsWith) > 0 && !anyOf(f.EndsWith, func(a string) bool { return strings.HasSuffix(v, a) }) {
		return false
	}
	return !anyOf(f.NotEquals, func(a string) bool { return v == a }) &&
		!anyOf(f.NotStartsWith, func(a string) bool { return strings.HasPrefix(v, a) }) &&
		!anyOf(f.NotEndsWith, func(a string) bool { return strings.HasSuffix(v, a) })
}

var (
	storeNameRE = regexp.MustCompile(`^[a-zA-Z0-9._\-]{3,128}$`)
	fieldRE     = regexp.MustCompile(`^[\w|\d|\.|_]{1,1000}$`)
	categories  = map[string]bool{"Management": true, "Data": true, "NetworkActivity": true, "Insight": true,
		"ActivityAuditLog": true, "ConfigurationItem": true, "Evidence": true}
)

func defaultSelectors() []AdvancedEventSelector {
	name, field := "Default management events", "eventCategory"
	return []AdvancedEventSelector{{Name: &name, FieldSelectors: []AdvancedFieldSelector{{Field: &field, Equals: []string{"Management"}}}}}
}

// validateSelectors checks a store's selectors (facts §8.1: ≤5, one category).
func validateSelectors(sels []AdvancedEventSelector) error {
	if len(sels) > 5 {
		return invalidParam("A maximum of 5 advanced event selectors is allowed per event data store.")
	}
	cat := ""
	for _, s := range sels {
		if s.Name != nil && len(*s.Name) > 1000 {
			return invalidParam("Advanced event selector names can be at most 1000 characters.")
		}
		if len(s.FieldSelectors) == 0 {
			return audit.Errorf("InvalidEventSelectors", "Each advanced event selector needs at least one field selector.")
		}
		hasCat := false
		for _, f := range s.FieldSelectors {
			if f.Field == nil || !fieldRE.MatchString(*f.Field) {
				return audit.Errorf("InvalidEventSelectors", "Each field selector needs a valid Field.")
			}
			if *f.Field == "eventCategory" {
				if len(f.Equals) != 1 || !categories[f.Equals[0]] {
					return audit.Errorf("InvalidEventSelectors", "eventCategory takes one of Equals Management, Data, NetworkActivity, Insight, ActivityAuditLog, ConfigurationItem or Evidence.")
				}
				c := f.Equals[0]
				if c == "Data" || c == "NetworkActivity" {
					c = "Management"
				}
				if cat != "" && cat != c {
					return audit.Errorf("InvalidEventSelectors", "An event data store holds one kind of events; the selectors ask for %s and %s.", cat, c)
				}
				cat, hasCat = c, true
			}
			for _, l := range [][]string{f.Equals, f.StartsWith, f.EndsWith, f.NotEquals, f.NotStartsWith, f.NotEndsWith} {
				for _, v := range l {
					if len(v) == 0 || len(v) > 2048 {
						return audit.Errorf("InvalidEventSelectors", "Field selector values must be 1 to 2048 characters.")
					}
				}
			}
		}
		if !hasCat {
			return audit.Errorf("InvalidEventSelectors", "Each advanced event selector needs an eventCategory field selector.")
		}
	}
	return nil
}

// storeOut is the shape of Create/Get/Update/RestoreEventDataStore.
type storeOut struct {
	EventDataStoreArn            string
	Name                         string
	Status                       string
	AdvancedEventSelectors       []AdvancedEventSelector
	MultiRegionEnabled           bool
	OrganizationEnabled          bool
	RetentionPeriod              int
	TerminationProtectionEnabled bool
	BillingMode                  string
	KmsKeyId                     string `json:",omitempty"`
	CreatedTimestamp             awsjson.Timestamp
	UpdatedTimestamp             awsjson.Timestamp
}

func outStore(s *EventDataStore) storeOut {
	return storeOut{EventDataStoreArn: s.ARN(), Name: s.Name, Status: s.Status, AdvancedEventSelectors: s.Selectors,
		MultiRegionEnabled: s.MultiRegionEnabled, OrganizationEnabled: s.OrganizationEnabled, RetentionPeriod: s.RetentionPeriod,
		TerminationProtectionEnabled: s.TerminationProtectionEnabled, BillingMode: s.BillingMode, KmsKeyId: s.KmsKeyID,
		CreatedTimestamp: awsjson.NewTimestamp(s.Created), UpdatedTimestamp: awsjson.NewTimestamp(s.Updated)}
}

// findStore resolves an ARN or ID to a store of the caller; l.mu is held.
func (l *Lake) findStoreLocked(c apiserver.Caller, ref string) (*EventDataStore, error) {
	if ref == "" {
		return nil, audit.Errorf("EventDataStoreARNInvalid", "The event data store ARN or ID is missing.")
	}
	id := ref
	if strings.HasPrefix(ref, "arn:") {
		i := strings.LastIndex(ref, ":eventdatastore/")
		if i < 0 {
			return nil, audit.Errorf("EventDataStoreARNInvalid", "The specified event data store ARN is not valid or does not map to an event data store in your account.")
		}
		id = ref[i+len(":eventdatastore/"):]
	}
	s := l.stores[id]
	if s == nil || s.Account != c.AccountID || strings.HasPrefix(ref, "arn:") && ref != s.ARN() {
		return nil, audit.Errorf("EventDataStoreNotFound", "The specified event data store was not found.")
	}
	return s, nil
}

type createStoreIn struct {
	Name                         *string
	AdvancedEventSelectors       []AdvancedEventSelector
	MultiRegionEnabled           *bool
	OrganizationEnabled          *bool
	RetentionPeriod              *int
	TerminationProtectionEnabled *bool
	TagsList                     []struct{ Key, Value *string }
	KmsKeyId                     *string
	StartIngestion               *bool
	BillingMode                  *string
}

func retentionBounds(mode string) (def, max int) {
	if mode == "FIXED_RETENTION_PRICING" {
		return 2557, 2557
	}
	return 366, 3653
}

func (l *Lake) createEventDataStore(ctx context.Context, req *apiserver.Request) (any, error) {
	var in createStoreIn
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	if in.Name == nil || !storeNameRE.MatchString(*in.Name) {
		return nil, invalidParam("Name must be 3 to 128 characters of letters, digits, '.', '_' and '-'.")
	}
	mode := "EXTENDABLE_RETENTION_PRICING"
	if in.BillingMode != nil {
		if *in.BillingMode != "EXTENDABLE_RETENTION_PRICING" && *in.BillingMode != "FIXED_RETENTION_PRICING" {
			return nil, invalidParam("BillingMode must be EXTENDABLE_RETENTION_PRICING or FIXED_RETENTION_PRICING.")
		}
		mode = *in.BillingMode
	}
	def, max := retentionBounds(mode)
	ret := def
	if in.RetentionPeriod != nil {
		if *in.RetentionPeriod < 7 || *in.RetentionPeriod > max {
			return nil, invalidParam("RetentionPeriod must be between 7 and %d days for %s.", max, mode)
		}
		ret = *in.RetentionPeriod
	}
	sels := in.AdvancedEventSelectors
	if sels == nil {
		sels = defaultSelectors()
	}
	if err := validateSelectors(sels); err != nil {
		return nil, err
	}
	if len(in.TagsList) > 50 {
		return nil, audit.Errorf("InvalidTagParameter", "A resource can have at most 50 tags.")
	}
	if in.KmsKeyId != nil {
		return nil, audit.Errorf("InvalidKmsKeyId", "cairn does not encrypt with KMS keys; omit KmsKeyId.")
	}
	boolOr := func(p *bool, d bool) bool {
		if p == nil {
			return d
		}
		return *p
	}
	now := l.opts.Now().UTC().Truncate(time.Millisecond)
	s := &EventDataStore{ID: newID(), Account: req.Caller.AccountID, Region: req.Caller.Region, Name: *in.Name,
		Status: StatusEnabled, Selectors: sels, MultiRegionEnabled: boolOr(in.MultiRegionEnabled, true),
		OrganizationEnabled: boolOr(in.OrganizationEnabled, false), RetentionPeriod: ret,
		TerminationProtectionEnabled: boolOr(in.TerminationProtectionEnabled, true), BillingMode: mode,
		Created: now, Updated: now}
	if !boolOr(in.StartIngestion, true) {
		s.Status = StatusStopped
	}
	if s.custom() && (s.MultiRegionEnabled || s.OrganizationEnabled) {
		if in.MultiRegionEnabled == nil && !s.OrganizationEnabled {
			s.MultiRegionEnabled = false
		} else {
			return nil, audit.Errorf("InvalidParameterCombination", "Event data stores for ActivityAuditLog events must be single-Region and not organization stores.")
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, o := range l.stores {
		if o.Account == s.Account && o.Region == s.Region {
			if o.Name == s.Name {
				return nil, audit.Errorf("EventDataStoreAlreadyExists", "An event data store named %s already exists.", s.Name)
			}
			n++
		}
	}
	if n >= l.opts.MaxStores {
		return nil, audit.Errorf("EventDataStoreMaxLimitExceeded", "Your account has the maximum number of event data stores (%d) in this Region.", l.opts.MaxStores)
	}
	l.stores[s.ID] = s
	if err := l.saveLocked(); err != nil {
		delete(l.stores, s.ID)
		return nil, err
	}
	out := outStore(s)
	out.Status = StatusCreated
	req.ResponseElements = apiserver.ResponseElements(out)
	return out, nil
}

type storeRefIn struct{ EventDataStore *string }

func (l *Lake) withStore(req *apiserver.Request, fn func(s *EventDataStore) (any, error)) (any, error) {
	var in storeRefIn
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	ref := ""
	if in.EventDataStore != nil {
		ref = *in.EventDataStore
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s, err := l.findStoreLocked(req.Caller, ref)
	if err != nil {
		return nil, err
	}
	return fn(s)
}

func (l *Lake) getEventDataStore(ctx context.Context, req *apiserver.Request) (any, error) {
	return l.withStore(req, func(s *EventDataStore) (any, error) { return outStore(s), nil })
}

func (l *Lake) listEventDataStores(ctx context.Context, req *apiserver.Request) (any, error) {
	var in struct {
		NextToken  *string
		MaxResults *int
	}
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	if in.MaxResults != nil && (*in.MaxResults < 1 || *in.MaxResults > 1000) {
		return nil, audit.Errorf("InvalidMaxResults", "MaxResults must be between 1 and 1000.")
	}
	l.mu.Lock()
	var list []*EventDataStore
	for _, s := range l.stores {
		if s.Account == req.Caller.AccountID && s.Region == req.Caller.Region {
			list = append(list, s)
		}
	}
	sort.Slice(list, func(i, j int) bool {
		return list[i].Created.Before(list[j].Created) || list[i].Created.Equal(list[j].Created) && list[i].ID < list[j].ID
	})
	items := make([]storeOut, 0, len(list))
	for _, s := range list {
		items = append(items, outStore(s))
	}
	l.mu.Unlock()
	start, end, next, err := page(len(items), in.NextToken, in.MaxResults, 1000)
	if err != nil {
		return nil, err
	}
	return struct {
		EventDataStores []storeOut
		NextToken       *string `json:",omitempty"`
	}{items[start:end], next}, nil
}

func (l *Lake) updateEventDataStore(ctx context.Context, req *apiserver.Request) (any, error) {
	var in struct {
		EventDataStore *string
		createStoreIn
	}
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	if in.KmsKeyId != nil {
		return nil, audit.Errorf("InvalidKmsKeyId", "cairn does not encrypt with KMS keys; omit KmsKeyId.")
	}
	if in.Name != nil && !storeNameRE.MatchString(*in.Name) {
		return nil, invalidParam("Name must be 3 to 128 characters of letters, digits, '.', '_' and '-'.")
	}
	if in.AdvancedEventSelectors != nil {
		if err := validateSelectors(in.AdvancedEventSelectors); err != nil {
			return nil, err
		}
	}
	ref := ""
	if in.EventDataStore != nil {
		ref = *in.EventDataStore
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s, err := l.findStoreLocked(req.Caller, ref)
	if err != nil {
		return nil, err
	}
	if s.Status == StatusPendingDeletion {
		return nil, audit.Errorf("InactiveEventDataStore", "The event data store %s is pending deletion.", s.ID)
	}
	n := *s
	if in.Name != nil {
		n.Name = *in.Name
	}
	if in.AdvancedEventSelectors != nil {
		n.Selectors = in.AdvancedEventSelectors
		if n.custom() != s.custom() {
			return nil, audit.Errorf("InvalidEventDataStoreCategory", "The selectors cannot change the kind of events the store holds.")
		}
	}
	if in.BillingMode != nil {
		if *in.BillingMode != "EXTENDABLE_RETENTION_PRICING" && *in.BillingMode != "FIXED_RETENTION_PRICING" {
			return nil, invalidParam("BillingMode must be EXTENDABLE_RETENTION_PRICING or FIXED_RETENTION_PRICING.")
		}
		if s.BillingMode == "EXTENDABLE_RETENTION_PRICING" && *in.BillingMode == "FIXED_RETENTION_PRICING" {
			return nil, invalidParam("BillingMode cannot change from EXTENDABLE_RETENTION_PRICING to FIXED_RETENTION_PRICING.")
		}
		n.BillingMode = *in.BillingMode
	}
	if in.RetentionPeriod != nil {
		if _, max := retentionBounds(n.BillingMode); *in.RetentionPeriod < 7 || *in.RetentionPeriod > max {
			return nil, invalidParam("RetentionPeriod must be between 7 and %d days for %s.", max, n.BillingMode)
		}
		n.RetentionPeriod = *in.RetentionPeriod
	}
	if in.MultiRegionEnabled != nil {
		n.MultiRegionEnabled = *in.MultiRegionEnabled
	}
	if in.OrganizationEnabled != nil {
		n.OrganizationEnabled = *in.OrganizationEnabled
	}
	if in.TerminationProtectionEnabled != nil {
		n.TerminationProtectionEnabled = *in.TerminationProtectionEnabled
	}
	if n.custom() && (n.MultiRegionEnabled || n.OrganizationEnabled) {
		return nil, audit.Errorf("InvalidParameterCombination", "Event data stores for ActivityAuditLog events must be single-Region and not organization stores.")
	}
	for _, o := range l.stores {
		if o != s && o.Account == n.Account && o.Region == n.Region && o.Name == n.Name {
			return nil, audit.Errorf("EventDataStoreAlreadyExists", "An event data store named %s already exists.", n.Name)
		}
	}
	n.Updated = l.opts.Now().UTC().Truncate(time.Millisecond)
	old := *s
	*s = n
	if err := l.saveLocked(); err != nil {
		*s = old
		return nil, err
	}
	out := outStore(s)
	req.ResponseElements = apiserver.ResponseElements(out)
	return out, nil
}

func (l *Lake) deleteEventDataStore(ctx context.Context, req *apiserver.Request) (any, error) {
	return l.withStore(req, func(s *EventDataStore) (any, error) {
		if s.Status == StatusPendingDeletion {
			return nil, audit.Errorf("InvalidEventDataStoreStatus", "The event data store %s is already pending deletion.", s.ID)
		}
		if s.TerminationProtectionEnabled {
			return nil, audit.Errorf("EventDataStoreTerminationProtected", "The event data store %s has termination protection enabled.", s.ID)
		}
		for _, c := range l.channels {
			for _, d := range c.Destinations {
				if d.Location == s.ARN() || d.Location == s.ID {
					return nil, audit.Errorf("ChannelExistsForEDS", "The channel %s sends events to this event data store.", c.ARN())
				}
			}
		}
		old := *s
		s.Status, s.Deleted = StatusPendingDeletion, l.opts.Now().UTC()
		if err := l.saveLocked(); err != nil {
			*s = old
			return nil, err
		}
		return struct{}{}, nil
	})
}

func (l *Lake) restoreEventDataStore(ctx context.Context, req *apiserver.Request) (any, error) {
	return l.withStore(req, func(s *EventDataStore) (any, error) {
		if s.Status != StatusPendingDeletion {
			return nil, audit.Errorf("InvalidEventDataStoreStatus", "The event data store %s is not pending deletion.", s.ID)
		}
		old := *s
		s.Status, s.Deleted = StatusEnabled, time.Time{}
		s.Updated = l.opts.Now().UTC().Truncate(time.Millisecond)
		if err := l.saveLocked(); err != nil {
			*s = old
			return nil, err
		}
		out := outStore(s)
		req.ResponseElements = apiserver.ResponseElements(out)
		return out, nil
	})
}

func (l *Lake) setIngestion(req *apiserver.Request, on bool) (any, error) {
	return l.withStore(req, func(s *EventDataStore) (any, error) {
		if s.custom() {
			return nil, audit.Errorf("InvalidEventDataStoreCategory", "Ingestion can be started and stopped only for event data stores of CloudTrail events.")
		}
		want, from := StatusEnabled, StatusStopped
		if !on {
			want, from = StatusStopped, StatusEnabled
		}
		if s.Status != from && s.Status != want {
			return nil, audit.Errorf("InvalidEventDataStoreStatus", "The event data store %s is %s.", s.ID, s.Status)
		}
		old := *s
		s.Status = want
		s.Updated = l.opts.Now().UTC().Truncate(time.Millisecond)
		if err := l.saveLocked(); err != nil {
			*s = old
			return nil, err
		}
		return struct{}{}, nil
	})
}

func (l *Lake) startIngestion(ctx context.Context, req *apiserver.Request) (any, error) {
	return l.setIngestion(req, true)
}

func (l *Lake) stopIngestion(ctx context.Context, req *apiserver.Request) (any, error) {
	return l.setIngestion(req, false)
}
