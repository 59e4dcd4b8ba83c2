package lake

import (
	"context"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
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
	ID                           string                   `json:"id"`
	Account                      string                   `json:"account"`
	Region                       string                   `json:"region"`
	Name                         string                   `json:"name"`
	Status                       string                   `json:"status"`
	Selectors                    []audit.AdvancedSelector `json:"selectors"`
	MultiRegionEnabled           bool                     `json:"multiRegion"`
	OrganizationEnabled          bool                     `json:"organization"`
	RetentionPeriod              int                      `json:"retentionDays"`
	TerminationProtectionEnabled bool                     `json:"terminationProtection"`
	BillingMode                  string                   `json:"billingMode"`
	KmsKeyID                     string                   `json:"kmsKeyId,omitempty"`
	Created                      time.Time                `json:"created"`
	Updated                      time.Time                `json:"updated"`
	// Deleted is when DeleteEventDataStore was called (PENDING_DELETION).
	Deleted time.Time `json:"deleted,omitzero"`
	// Tags are the store's tags (CreateEventDataStore's TagsList, AddTags).
	Tags []audit.Tag `json:"tags,omitempty"`
	// FromSeq is the feed's last sequence number when the store last
	// started ingesting (created, started, restored): it takes only the
	// records appended after it, whatever Lake's position (kept in
	// memory while no store ingests) says after a restart or a crash.
	FromSeq int64 `json:"fromSeq,omitempty"`
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
			if f.Field == "eventCategory" && len(f.Equals) > 0 {
				return f.Equals[0]
			}
		}
	}
	return "Management"
}

// custom reports whether the store holds custom (channel) events.
func (s *EventDataStore) custom() bool { return s.category() == "ActivityAuditLog" }

// oldestKept is the oldest eventTime the store's retention keeps at now:
// the one rule of live ingest, imports and the sweep.
func (s *EventDataStore) oldestKept(now time.Time) time.Time {
	return now.AddDate(0, 0, -s.RetentionPeriod)
}

// selects reports whether a record of the event store flows into s.
func (s *EventDataStore) selects(r *audit.Record) bool {
	if s.Status != StatusEnabled && s.Status != StatusCreated || s.custom() {
		return false
	}
	if r.Account != s.Account || !s.MultiRegionEnabled && r.Region != s.Region {
		return false
	}
	return audit.MatchAny(s.Selectors, r)
}

var storeNameRE = regexp.MustCompile(`^[a-zA-Z0-9._\-]{3,128}$`)

func defaultSelectors() []audit.AdvancedSelector {
	return []audit.AdvancedSelector{{Name: "Default management events",
		FieldSelectors: []audit.FieldSelector{{Field: "eventCategory", Equals: []string{"Management"}}}}}
}

// findStoreLocked resolves an ARN or ID to a store of account; l.mu is held.
func (l *Lake) findStoreLocked(account, ref string) (*EventDataStore, error) {
	if ref == "" {
		return nil, audit.Errorf(audit.CodeEventDataStoreARNInvalid, "The event data store ARN or ID is missing.")
	}
	id := ref
	if strings.HasPrefix(ref, "arn:") {
		i := strings.LastIndex(ref, ":eventdatastore/")
		if i < 0 {
			return nil, audit.Errorf(audit.CodeEventDataStoreARNInvalid, "The specified event data store ARN is not valid or does not map to an event data store in your account.")
		}
		id = ref[i+len(":eventdatastore/"):]
	}
	s := l.stores[id]
	if s == nil || s.Account != account || strings.HasPrefix(ref, "arn:") && ref != s.ARN() {
		return nil, audit.Errorf(audit.CodeEventDataStoreNotFound, "The specified event data store was not found.")
	}
	return s, nil
}

// Tag is a resource tag of an event data store or a channel.

// CreateStoreRequest is what CreateEventDataStore takes; a nil field takes
// its default (multi-Region, not an organization store, termination
// protection, ingestion started, extendable retention pricing of 366 days,
// the default management events selector).
type CreateStoreRequest struct {
	Name                         *string
	Selectors                    []audit.AdvancedSelector
	MultiRegionEnabled           *bool
	OrganizationEnabled          *bool
	RetentionPeriod              *int
	TerminationProtectionEnabled *bool
	Tags                         []audit.Tag
	KmsKeyID                     *string
	StartIngestion               *bool
	BillingMode                  *string
}

// UpdateStoreRequest is what UpdateEventDataStore takes: the store (ARN or
// ID) and the fields to change (nil keeps a field; Tags and StartIngestion
// are ignored).
type UpdateStoreRequest struct {
	Store string
	CreateStoreRequest
}

func retentionBounds(mode string) (def, max int) {
	if mode == "FIXED_RETENTION_PRICING" {
		return 2557, 2557
	}
	return 366, 3653
}

// CreateEventDataStore creates an event data store of p's account in p's
// region. It returns the store as created (Status CREATED). Errors:
// InvalidParameter, InvalidEventSelectors, InvalidTagParameter,
// InvalidKmsKeyId, InvalidParameterCombination, EventDataStoreAlreadyExists,
// EventDataStoreMaxLimitExceeded (Options.MaxStores).
func (l *Lake) CreateEventDataStore(ctx context.Context, p audit.Principal, in CreateStoreRequest) (EventDataStore, error) {
	if in.Name == nil || !storeNameRE.MatchString(*in.Name) {
		return EventDataStore{}, invalidParam("Name must be 3 to 128 characters of letters, digits, '.', '_' and '-'.")
	}
	mode := "EXTENDABLE_RETENTION_PRICING"
	if in.BillingMode != nil {
		if *in.BillingMode != "EXTENDABLE_RETENTION_PRICING" && *in.BillingMode != "FIXED_RETENTION_PRICING" {
			return EventDataStore{}, invalidParam("BillingMode must be EXTENDABLE_RETENTION_PRICING or FIXED_RETENTION_PRICING.")
		}
		mode = *in.BillingMode
	}
	def, max := retentionBounds(mode)
	ret := def
	if in.RetentionPeriod != nil {
		if *in.RetentionPeriod < 7 || *in.RetentionPeriod > max {
			return EventDataStore{}, invalidParam("RetentionPeriod must be between 7 and %d days for %s.", max, mode)
		}
		ret = *in.RetentionPeriod
	}
	sels := in.Selectors
	if sels == nil {
		sels = defaultSelectors()
	}
	if err := audit.ValidateSelectors(sels, audit.ForEventDataStore); err != nil {
		return EventDataStore{}, err
	}
	if err := audit.ValidateTags(in.Tags); err != nil {
		return EventDataStore{}, err
	}
	// CreateEventDataStore models no TagsLimitExceeded: too many tags are
	// InvalidTagParameter.
	tags, err := audit.MergeTags(nil, in.Tags, audit.CodeInvalidTagParameter, "resource")
	if err != nil {
		return EventDataStore{}, err
	}
	if in.KmsKeyID != nil {
		return EventDataStore{}, audit.Errorf(audit.CodeInvalidKmsKeyId, "cairn does not encrypt with KMS keys; omit KmsKeyId.")
	}
	if in.OrganizationEnabled != nil && *in.OrganizationEnabled {
		// Only the organization's management account makes organization
		// stores, as only it makes organization trails.
		if err := l.opts.Organization.CheckManagement(p.AccountID); err != nil {
			return EventDataStore{}, err
		}
	}
	boolOr := func(p *bool, d bool) bool {
		if p == nil {
			return d
		}
		return *p
	}
	// The feed's head before the store exists: what is appended after
	// it is the store's.
	from, err := l.feedHead(ctx)
	if err != nil {
		return EventDataStore{}, err
	}
	now := l.opts.Now().UTC().Truncate(time.Millisecond)
	s := &EventDataStore{ID: audit.NewID(), Account: p.AccountID, Region: p.Region, Name: *in.Name, FromSeq: from,
		Status: StatusEnabled, Selectors: sels, MultiRegionEnabled: boolOr(in.MultiRegionEnabled, true),
		OrganizationEnabled: boolOr(in.OrganizationEnabled, false), RetentionPeriod: ret,
		TerminationProtectionEnabled: boolOr(in.TerminationProtectionEnabled, true), BillingMode: mode,
		Created: now, Updated: now, Tags: tags}
	if !boolOr(in.StartIngestion, true) {
		s.Status = StatusStopped
	}
	if s.custom() && (s.MultiRegionEnabled || s.OrganizationEnabled) {
		if in.MultiRegionEnabled == nil && !s.OrganizationEnabled {
			s.MultiRegionEnabled = false
		} else {
			return EventDataStore{}, audit.Errorf(audit.CodeInvalidParameterCombination, "Event data stores for ActivityAuditLog events must be single-Region and not organization stores.")
		}
	}
	err = l.update(ctx, func() error {
		n := 0
		for _, o := range l.stores {
			if o.Account == s.Account && o.Region == s.Region {
				if o.Name == s.Name {
					return audit.Errorf(audit.CodeEventDataStoreAlreadyExists, "An event data store named %s already exists.", s.Name)
				}
				n++
			}
		}
		if n >= l.opts.MaxStores {
			return audit.Errorf(audit.CodeEventDataStoreMaxLimitExceeded, "Your account has the maximum number of event data stores (%d) in this Region.", l.opts.MaxStores)
		}
		c := *s
		l.stores[s.ID] = &c
		return nil
	})
	if err != nil {
		return EventDataStore{}, err
	}
	out := *s
	out.Status = StatusCreated
	return out, nil
}

// withStore runs fn on p's store ref (an ARN or ID) under l.mu.
func (l *Lake) withStore(ctx context.Context, p audit.Principal, ref string, fn func(s *EventDataStore) error) error {
	l.fresh(ctx)
	l.mu.Lock()
	defer l.mu.Unlock()
	s, err := l.findStoreLocked(p.AccountID, ref)
	if err != nil {
		return err
	}
	return fn(s)
}

// changeStore runs fn on p's store ref (an ARN or ID) as stored and saves
// the registry (update).
func (l *Lake) changeStore(ctx context.Context, p audit.Principal, ref string, fn func(s *EventDataStore) error) error {
	return l.update(ctx, func() error {
		s, err := l.findStoreLocked(p.AccountID, ref)
		if err != nil {
			return err
		}
		return fn(s)
	})
}

// EventDataStore returns p's store ref (an ARN or ID). Errors:
// EventDataStoreARNInvalid, EventDataStoreNotFound.
func (l *Lake) EventDataStore(ctx context.Context, p audit.Principal, ref string) (EventDataStore, error) {
	var out EventDataStore
	err := l.withStore(ctx, p, ref, func(s *EventDataStore) error { out = *s; return nil })
	return out, err
}

// EventDataStores returns the stores of p's account in p's region, oldest
// first.
func (l *Lake) EventDataStores(ctx context.Context, p audit.Principal) []EventDataStore {
	l.fresh(ctx)
	l.mu.Lock()
	defer l.mu.Unlock()
	var list []EventDataStore
	for _, s := range l.stores {
		if s.Account == p.AccountID && s.Region == p.Region {
			list = append(list, *s)
		}
	}
	sort.Slice(list, func(i, j int) bool {
		return list[i].Created.Before(list[j].Created) || list[i].Created.Equal(list[j].Created) && list[i].ID < list[j].ID
	})
	return list
}

// UpdateEventDataStore changes p's store in.Store and returns it. Errors:
// those of CreateEventDataStore and EventDataStore, InactiveEventDataStore,
// InvalidEventDataStoreCategory (selectors changing the kind of events).
func (l *Lake) UpdateEventDataStore(ctx context.Context, p audit.Principal, in UpdateStoreRequest) (EventDataStore, error) {
	if in.KmsKeyID != nil {
		return EventDataStore{}, audit.Errorf(audit.CodeInvalidKmsKeyId, "cairn does not encrypt with KMS keys; omit KmsKeyId.")
	}
	if in.OrganizationEnabled != nil && *in.OrganizationEnabled {
		// Only the organization's management account makes organization
		// stores, as only it makes organization trails.
		if err := l.opts.Organization.CheckManagement(p.AccountID); err != nil {
			return EventDataStore{}, err
		}
	}
	if in.Name != nil && !storeNameRE.MatchString(*in.Name) {
		return EventDataStore{}, invalidParam("Name must be 3 to 128 characters of letters, digits, '.', '_' and '-'.")
	}
	if in.Selectors != nil {
		if err := audit.ValidateSelectors(in.Selectors, audit.ForEventDataStore); err != nil {
			return EventDataStore{}, err
		}
	}
	var out EventDataStore
	err := l.changeStore(ctx, p, in.Store, func(s *EventDataStore) error {
		if s.Status == StatusPendingDeletion {
			return audit.Errorf(audit.CodeInactiveEventDataStore, "The event data store %s is pending deletion.", s.ID)
		}
		n := *s
		if in.Name != nil {
			n.Name = *in.Name
		}
		if in.Selectors != nil {
			n.Selectors = in.Selectors
			if n.custom() != s.custom() {
				return audit.Errorf(audit.CodeInvalidEventDataStoreCategory, "The selectors cannot change the kind of events the store holds.")
			}
		}
		if in.BillingMode != nil {
			if *in.BillingMode != "EXTENDABLE_RETENTION_PRICING" && *in.BillingMode != "FIXED_RETENTION_PRICING" {
				return invalidParam("BillingMode must be EXTENDABLE_RETENTION_PRICING or FIXED_RETENTION_PRICING.")
			}
			if s.BillingMode == "EXTENDABLE_RETENTION_PRICING" && *in.BillingMode == "FIXED_RETENTION_PRICING" {
				return invalidParam("BillingMode cannot change from EXTENDABLE_RETENTION_PRICING to FIXED_RETENTION_PRICING.")
			}
			n.BillingMode = *in.BillingMode
		}
		if in.RetentionPeriod != nil {
			if _, max := retentionBounds(n.BillingMode); *in.RetentionPeriod < 7 || *in.RetentionPeriod > max {
				return invalidParam("RetentionPeriod must be between 7 and %d days for %s.", max, n.BillingMode)
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
			return audit.Errorf(audit.CodeInvalidParameterCombination, "Event data stores for ActivityAuditLog events must be single-Region and not organization stores.")
		}
		for _, o := range l.stores {
			if o != s && o.Account == n.Account && o.Region == n.Region && o.Name == n.Name {
				return audit.Errorf(audit.CodeEventDataStoreAlreadyExists, "An event data store named %s already exists.", n.Name)
			}
		}
		n.Updated = l.opts.Now().UTC().Truncate(time.Millisecond)
		*s = n
		out = n
		return nil
	})
	return out, err
}

// DeleteEventDataStore puts p's store ref in PENDING_DELETION. Errors:
// those of EventDataStore, InvalidEventDataStoreStatus,
// EventDataStoreTerminationProtected, ChannelExistsForEDS.
func (l *Lake) DeleteEventDataStore(ctx context.Context, p audit.Principal, ref string) error {
	return l.changeStore(ctx, p, ref, func(s *EventDataStore) error {
		if s.Status == StatusPendingDeletion {
			return audit.Errorf(audit.CodeInvalidEventDataStoreStatus, "The event data store %s is already pending deletion.", s.ID)
		}
		if s.TerminationProtectionEnabled {
			return audit.Errorf(audit.CodeEventDataStoreTerminationProtected, "The event data store %s has termination protection enabled.", s.ID)
		}
		for _, c := range l.channels {
			for _, d := range c.Destinations {
				if d.Location == s.ARN() || d.Location == s.ID {
					return audit.Errorf(audit.CodeChannelExistsForEDS, "The channel %s sends events to this event data store.", c.ARN())
				}
			}
		}
		s.Status, s.Deleted = StatusPendingDeletion, l.opts.Now().UTC()
		return nil
	})
}

// RestoreEventDataStore brings p's store ref back from PENDING_DELETION
// and returns it. Errors: those of EventDataStore,
// InvalidEventDataStoreStatus.
func (l *Lake) RestoreEventDataStore(ctx context.Context, p audit.Principal, ref string) (EventDataStore, error) {
	var out EventDataStore
	from, err := l.feedHead(ctx)
	if err != nil {
		return out, err
	}
	err = l.changeStore(ctx, p, ref, func(s *EventDataStore) error {
		if s.Status != StatusPendingDeletion {
			return audit.Errorf(audit.CodeInvalidEventDataStoreStatus, "The event data store %s is not pending deletion.", s.ID)
		}
		s.Status, s.Deleted, s.FromSeq = StatusEnabled, time.Time{}, from
		s.Updated = l.opts.Now().UTC().Truncate(time.Millisecond)
		out = *s
		return nil
	})
	return out, err
}

// SetIngestion starts (on) or stops the ingestion of p's store ref.
// Errors: those of EventDataStore, InvalidEventDataStoreCategory (a store
// of custom events), InvalidEventDataStoreStatus.
func (l *Lake) SetIngestion(ctx context.Context, p audit.Principal, ref string, on bool) error {
	var from int64
	if on {
		var err error
		if from, err = l.feedHead(ctx); err != nil {
			return err
		}
	}
	return l.changeStore(ctx, p, ref, func(s *EventDataStore) error {
		if s.custom() {
			return audit.Errorf(audit.CodeInvalidEventDataStoreCategory, "Ingestion can be started and stopped only for event data stores of CloudTrail events.")
		}
		// AWS starts only a STOPPED_INGESTION store and stops only an
		// ENABLED one: starting a started store, or stopping a stopped
		// one, is InvalidEventDataStoreStatus (issue 14).
		want, ok := StatusEnabled, s.Status == StatusStopped
		if !on {
			want, ok = StatusStopped, s.Status == StatusEnabled || s.Status == StatusCreated
		}
		if !ok {
			return audit.Errorf(audit.CodeInvalidEventDataStoreStatus, "The event data store %s is %s.", s.ID, s.Status)
		}
		s.Status = want
		if on {
			s.FromSeq = from
		}
		s.Updated = l.opts.Now().UTC().Truncate(time.Millisecond)
		return nil
	})
}
