package audit

import (
	"strings"
	"time"
)

// AttributeKey names an attribute a lookup can filter on. The values are
// CloudTrail's LookupAttributeKey names.
type AttributeKey string

// The lookup attributes of CloudTrail's Event History.
const (
	AttrEventID      AttributeKey = "EventId"
	AttrEventName    AttributeKey = "EventName"
	AttrReadOnly     AttributeKey = "ReadOnly"
	AttrUsername     AttributeKey = "Username"
	AttrResourceType AttributeKey = "ResourceType"
	AttrResourceName AttributeKey = "ResourceName"
	AttrEventSource  AttributeKey = "EventSource"
	AttrAccessKeyID  AttributeKey = "AccessKeyId"
)

// Scope attributes: cairn's lookup attributes beyond CloudTrail's eight.
// They choose whose Event History a lookup reads rather than filter
// records: AccountId narrows a responder's lookup to one account,
// AwsRegion reads another region than the signed one. For other callers
// they only narrow (their own account and signed region). The edge turns
// them into Query.Account and Query.Region.
const (
	AttrAccountID AttributeKey = "AccountId"
	AttrAWSRegion AttributeKey = "AwsRegion"
)

// AttributeKeys lists every AttributeKey in CloudTrail's order.
var AttributeKeys = []AttributeKey{
	AttrEventID, AttrEventName, AttrReadOnly, AttrUsername,
	AttrResourceType, AttrResourceName, AttrEventSource, AttrAccessKeyID,
}

// Valid reports whether k is one of the eight keys.
func (k AttributeKey) Valid() bool {
	for _, v := range AttributeKeys {
		if k == v {
			return true
		}
	}
	return false
}

// Attribute is one exact, case-sensitive match on an attribute.
type Attribute struct {
	Key   AttributeKey
	Value string
}

// Cursor is a position in the newest-first order of a lookup: the next page
// starts with the first record strictly after it, that is with an earlier
// Time, or the same Time and a smaller EventID, or (in a lookup of every
// account) the same Time and EventID and a smaller Account.
type Cursor struct {
	Time    time.Time
	EventID string
	// Account is the last record's account in a lookup of every account
	// (Query.AnyAccount), empty otherwise.
	Account string
}

// Query is a lookup in one account's Event History of one region, or in
// every account's (AnyAccount) of one region.
type Query struct {
	Account string
	// AnyAccount makes the lookup cover every account (Account is then
	// ignored): an incident responder's lookups. Records are then ordered
	// by (Time, EventID, Account), so that two accounts' records with the
	// same time and eventID are never skipped by paging.
	AnyAccount bool
	Region     string
	// AnyRegion makes the lookup cover every region (Region is then
	// ignored): a responder's AwsRegion=*. (Account, EventID) is unique in
	// a store, so the order stays total.
	AnyRegion bool
	// Category selects the records: CategoryManagement for ordinary
	// lookups, CategoryInsight for EventCategory=insight. Other categories
	// are never returned by Event History.
	Category Category
	// Start and End bound eventTime, both inclusive; zero means unbounded.
	Start, End time.Time
	// Attributes must all match (AND). CloudTrail allows at most one; cairn
	// allows several.
	Attributes []Attribute
	// ReceivedSince, when set, leaves out the records the store received
	// before it: Event History's retention counts from when cairn received
	// a record (an import of 2021's logs is kept), not from eventTime.
	ReceivedSince time.Time
	// Limit is the page size, at least 1.
	Limit int
	// After resumes a lookup after the last record of the previous page.
	After *Cursor
}

// Page is one page of a lookup, newest first. Next is nil on the last page.
type Page struct {
	Records []Record
	Next    *Cursor
}

// Matches reports whether r satisfies every filter of q except Limit,
// After and ReceivedSince (a record does not carry when it was received).
// Stores may use it to post-filter; the conformance suite uses it as the
// reference semantics.
func (q *Query) Matches(r *Record) bool {
	if !q.AnyAccount && r.Account != q.Account || !q.AnyRegion && r.Region != q.Region || r.Category != q.Category {
		return false
	}
	if !q.Start.IsZero() && r.Time.Before(q.Start) {
		return false
	}
	if !q.End.IsZero() && r.Time.After(q.End) {
		return false
	}
	for _, a := range q.Attributes {
		if !r.HasAttribute(a) {
			return false
		}
	}
	return true
}

// HasAttribute reports whether r matches a. ResourceName matches a
// resource's Name or its ARN.
func (r *Record) HasAttribute(a Attribute) bool {
	switch a.Key {
	case AttrEventID:
		return r.EventID == a.Value
	case AttrEventName:
		return r.EventName == a.Value
	case AttrReadOnly:
		return r.ReadOnly != Unset && r.ReadOnly.String() == a.Value
	case AttrUsername:
		return r.Username != "" && r.Username == a.Value
	case AttrEventSource:
		return r.EventSource == a.Value
	case AttrAccessKeyID:
		return r.AccessKeyID != "" && r.AccessKeyID == a.Value
	case AttrResourceType:
		for _, res := range r.Resources {
			if res.Type != "" && res.Type == a.Value {
				return true
			}
		}
	case AttrResourceName:
		for _, res := range r.Resources {
			if (res.Name != "" && res.Name == a.Value) || (res.ARN != "" && res.ARN == a.Value) {
				return true
			}
		}
	}
	return false
}

// Before reports whether r sorts after c in newest-first order, that is
// whether r belongs to the page that follows c.
func (c *Cursor) Before(r *Record) bool {
	if !r.Time.Equal(c.Time) {
		return r.Time.Before(c.Time)
	}
	if r.EventID != c.EventID || c.Account == "" {
		return strings.Compare(r.EventID, c.EventID) < 0
	}
	return strings.Compare(r.Account, c.Account) < 0
}

// Newer orders records newest first: by Time, then EventID, then Account,
// all descending. It is the order of every lookup (within one account the
// Account never decides).
func Newer(a, b *Record) int {
	if c := b.Time.Compare(a.Time); c != 0 {
		return c
	}
	if c := strings.Compare(b.EventID, a.EventID); c != 0 {
		return c
	}
	return strings.Compare(b.Account, a.Account)
}

// CursorOf returns the cursor after r in the lookup q.
func (q *Query) CursorOf(r *Record) *Cursor {
	c := &Cursor{Time: r.Time, EventID: r.EventID}
	if q.AnyAccount {
		c.Account = r.Account
	}
	return c
}
