package audit

import "time"

// Category is the event category of a record, as CloudTrail's eventCategory
// names it. Records that predate eventCategory (eventVersion < 1.07) are
// classified from managementEvent and eventType by Extract.
type Category uint8

// The categories. CategoryOther holds Lake-only and unknown categories.
const (
	CategoryManagement Category = iota + 1
	CategoryData
	CategoryInsight
	CategoryNetworkActivity
	CategoryOther
)

// String returns the eventCategory spelling of c.
func (c Category) String() string {
	switch c {
	case CategoryManagement:
		return "Management"
	case CategoryData:
		return "Data"
	case CategoryInsight:
		return "Insight"
	case CategoryNetworkActivity:
		return "NetworkActivity"
	case CategoryOther:
		return "Other"
	}
	return "Unknown"
}

// ParseCategory returns the Category for an eventCategory string.
// Unknown strings map to CategoryOther.
func ParseCategory(s string) Category {
	switch s {
	case "Management":
		return CategoryManagement
	case "Data":
		return CategoryData
	case "Insight":
		return CategoryInsight
	case "NetworkActivity":
		return CategoryNetworkActivity
	}
	return CategoryOther
}

// Tri is a boolean that may be absent: readOnly is optional in CloudTrail
// records, and a record without it matches neither ReadOnly=true nor false.
type Tri uint8

// The values of a Tri.
const (
	Unset Tri = iota
	True
	False
)

// TriOf converts b to a Tri.
func TriOf(b bool) Tri {
	if b {
		return True
	}
	return False
}

// String returns "true", "false" or "".
func (t Tri) String() string {
	switch t {
	case True:
		return "true"
	case False:
		return "false"
	}
	return ""
}

// Resource is one resource of a record as LookupEvents reports it.
// Type is the CloudFormation-style type (AWS::S3::Bucket); Name is the
// user-visible name (bucket name, user name, instance ID) and ARN the full
// ARN when the record gave one.
type Resource struct {
	Type string
	Name string
	ARN  string
}

// Record is one stored CloudTrail record: its original bytes, unchanged, and
// the fields cairn extracts from them to index lookups. Build one with
// Extract; the fields other than Raw are derived and never authoritative.
type Record struct {
	// Raw is the record's JSON exactly as received or as cairn wrote it.
	Raw []byte

	// Account owns the record: recipientAccountId, else userIdentity.accountId.
	Account string
	// Region is awsRegion.
	Region string
	// EventID is eventID, the record's key within its account.
	EventID string
	// Time is eventTime, UTC, second precision.
	Time time.Time
	// EventName is eventName (insightDetails.eventName for Insights).
	EventName string
	// EventSource is eventSource (insightDetails.eventSource for Insights).
	EventSource string
	// ReadOnly is readOnly when the record has it.
	ReadOnly Tri
	// Username is the caller's name as LookupEvents reports it (see Username).
	Username string
	// AccessKeyID is userIdentity.accessKeyId.
	AccessKeyID string
	// Category is the event category.
	Category Category
	// Resources are the record's resources, as LookupEvents reports them.
	Resources []Resource
}
