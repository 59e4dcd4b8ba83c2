package audit

import (
	"bytes"
	"fmt"
	"strings"
	"time"
	"unsafe"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// MaxRecordSize is the largest record cairn accepts, in bytes. CloudTrail
// caps records at 256 KB; Lake's large events reach 1 MB.
const MaxRecordSize = 1 << 20

// extractView is the part of a record Extract reads. Members whose type varies
// in the wild are kept raw and read leniently.
type extractView struct {
	EventTime          string         `json:"eventTime"`
	EventSource        string         `json:"eventSource"`
	EventName          string         `json:"eventName"`
	AWSRegion          string         `json:"awsRegion"`
	EventID            string         `json:"eventID"`
	EventType          string         `json:"eventType"`
	EventCategory      string         `json:"eventCategory"`
	RecipientAccountID string         `json:"recipientAccountId"`
	ReadOnly           jsontext.Value `json:"readOnly"`
	ManagementEvent    jsontext.Value `json:"managementEvent"`
	UserIdentity       jsontext.Value `json:"userIdentity"`
	Resources          jsontext.Value `json:"resources"`
	InsightDetails     *struct {
		EventSource string `json:"eventSource"`
		EventName   string `json:"eventName"`
	} `json:"insightDetails"`
}

type identityView struct {
	Type        string `json:"type"`
	PrincipalID string `json:"principalId"`
	ARN         string `json:"arn"`
	AccountID   string `json:"accountId"`
	AccessKeyID string `json:"accessKeyId"`
	UserName    string `json:"userName"`
	OnBehalfOf  *struct {
		UserID string `json:"userId"`
	} `json:"onBehalfOf"`
}

type resourceView struct {
	ARN       string `json:"ARN"`
	ARNPrefix string `json:"ARNPrefix"`
	Type      string `json:"type"`
}

// lenient reads records as encoding/json did: a repeated member's last value
// wins and invalid UTF-8 is accepted (the raw bytes are kept unchanged).
// Member names match exactly, as CloudTrail's consumers match them.
var lenient = json.JoinOptions(jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))

// Extract indexes one CloudTrail record. raw is kept as Record.Raw, not
// copied, and the Record's strings may share its memory; the caller must
// not modify it afterwards. It returns an error
// wrapping ErrInvalidRecord when raw is not a JSON object or lacks what every
// record has (eventID, eventTime, awsRegion, an account). Members of
// unexpected types that cairn does not need are ignored, never rewritten.
func Extract(raw []byte) (Record, error) { return extract(raw, true) }

// extract is Extract; with scan false it decodes every record with the
// JSON library (the reference the scanner is tested against).
func extract(raw []byte, scan bool) (Record, error) {
	if len(raw) > MaxRecordSize {
		return Record{}, fmt.Errorf("%w: %d bytes, larger than %d", ErrInvalidRecord, len(raw), MaxRecordSize)
	}
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Record{}, fmt.Errorf("%w: not a JSON object", ErrInvalidRecord)
	}
	var sv scanned
	if scan && scanRecord(raw, &sv) {
		r := sv.record(raw)
		if err := checkRecord(&r, sv.eventTime); err != nil {
			return Record{}, err
		}
		sv.derive(&r)
		return r, nil
	}
	r, eventTime, err := decodeRecord(raw)
	if err != nil {
		return Record{}, err
	}
	if err := checkRecord(&r, eventTime); err != nil {
		return Record{}, err
	}
	AddDerivedResources(&r)
	return r, nil
}

// ExtractLeading is Extract of the record b starts with, in the same pass
// that finds where it ends: b holds the record's first byte ('{') and
// possibly more after its end (a reader's buffer). It returns the record
// and the number of bytes it took from b; before the Record is built, keep
// is given those bytes and returns the memory the Record is to hold as Raw
// (a copy, when b is a buffer reused later; the Record's strings share
// it). ok is false, and keep not called, when the record is not all in b,
// is larger than MaxRecordSize, or is one the scanner leaves to the
// decoder or Extract refuses: the caller then finds the record's end
// itself and calls Extract, which decides (and words any error) as
// always. What it returns for a record is what Extract returns for the
// same bytes (TestExtractLeading, FuzzExtractLeading).
func ExtractLeading(b []byte, keep func(raw []byte) []byte) (r Record, n int, ok bool) {
	if len(b) == 0 || b[0] != '{' {
		return Record{}, 0, false
	}
	var sv scanned
	sc := recordScanner{b: b, s: unsafe.String(unsafe.SliceData(b), len(b))}
	if !sc.top(&sv) || sc.i > MaxRecordSize {
		return Record{}, 0, false
	}
	n = sc.i
	// Checked before keep, on what record would take from sv.
	check := Record{EventID: sv.eventID, Region: sv.awsRegion, Account: sv.account()}
	if checkRecord(&check, sv.eventTime) != nil {
		return Record{}, 0, false
	}
	raw := keep(b[:n:n])
	if len(raw) != n {
		panic("audit: ExtractLeading's keep returned bytes of another length")
	}
	sv.rebase(b[:n], raw)
	r = sv.record(raw)
	r.Time = check.Time
	sv.derive(&r)
	return r, n, true
}

// checkRecord refuses a record without what every record has and sets its
// Time from eventTime.
func checkRecord(r *Record, eventTime string) error {
	switch {
	case r.EventID == "":
		return fmt.Errorf("%w: no eventID", ErrInvalidRecord)
	case len(r.EventID) > 256:
		return fmt.Errorf("%w: eventID longer than 256 bytes", ErrInvalidRecord)
	case r.Region == "":
		return fmt.Errorf("%w: no awsRegion", ErrInvalidRecord)
	case r.Account == "":
		return fmt.Errorf("%w: no recipientAccountId or userIdentity.accountId", ErrInvalidRecord)
	}
	t, err := time.Parse(time.RFC3339, eventTime)
	if err != nil {
		return fmt.Errorf("%w: eventTime %q is not an ISO-8601 time", ErrInvalidRecord, eventTime)
	}
	// CloudTrail times have whole seconds; the index keeps seconds so that
	// cursors are exact even for records written with fractions.
	r.Time = t.UTC().Truncate(time.Second)
	return nil
}

// derive adds the resources LookupEvents derives to r, the record the
// scanner read (AddDerivedResources without a second pass over it): read
// by deriveScan, decoded by DeriveResources where that gives up.
func (v *scanned) derive(r *Record) {
	if !v.resourcesMember && len(r.Resources) == 0 && r.Category == CategoryManagement {
		var ok bool
		if r.Resources, ok = deriveScan(r.EventSource, r.ReadOnly, v.requestParameters, v.responseElements); !ok {
			r.Resources = DeriveResources(r.EventSource, r.ReadOnly, v.requestParameters, v.responseElements)
		}
	}
}

// rebase points every string and slice v holds within from at the same
// bytes of to, a copy of from.
func (v *scanned) rebase(from, to []byte) {
	for _, s := range []*string{
		&v.eventTime, &v.eventSource, &v.eventName, &v.awsRegion, &v.eventID,
		&v.eventType, &v.eventCategory, &v.recipientAccountID,
		&v.id.Type, &v.id.PrincipalID, &v.id.ARN, &v.id.AccountID, &v.id.AccessKeyID, &v.id.UserName,
		&v.onBehalfOf, &v.insightSource, &v.insightName,
	} {
		*s = rebaseString(*s, from, to)
	}
	for i := range v.resources {
		x := &v.resources[i]
		x.ARN = rebaseString(x.ARN, from, to)
		x.ARNPrefix = rebaseString(x.ARNPrefix, from, to)
		x.Type = rebaseString(x.Type, from, to)
	}
	for _, b := range []*[]byte{&v.readOnly, &v.managementEvent, &v.requestParameters, &v.responseElements} {
		*b = rebaseBytes(*b, from, to)
	}
}

// offsetIn returns where p lies within from, false when outside it.
func offsetIn(p unsafe.Pointer, n int, from []byte) (int, bool) {
	if n == 0 || len(from) == 0 {
		return 0, false
	}
	off := uintptr(p) - uintptr(unsafe.Pointer(unsafe.SliceData(from)))
	if off >= uintptr(len(from)) || off+uintptr(n) > uintptr(len(from)) {
		return 0, false
	}
	return int(off), true
}

func rebaseString(s string, from, to []byte) string {
	off, ok := offsetIn(unsafe.Pointer(unsafe.StringData(s)), len(s), from)
	if !ok {
		return s
	}
	return unsafe.String(&to[off], len(s))
}

func rebaseBytes(b []byte, from, to []byte) []byte {
	off, ok := offsetIn(unsafe.Pointer(unsafe.SliceData(b)), len(b), from)
	if !ok {
		return b
	}
	return to[off : off+len(b) : off+len(b)]
}

// account is the record's account: recipientAccountId, else
// userIdentity.accountId.
func (v *scanned) account() string {
	if v.recipientAccountID != "" {
		return v.recipientAccountID
	}
	return v.id.AccountID
}

// record builds the Record the scanner read (Extract checks it).
func (v *scanned) record(raw []byte) Record {
	r := Record{
		Raw:         raw,
		Account:     v.account(),
		Region:      v.awsRegion,
		EventID:     v.eventID,
		EventName:   v.eventName,
		EventSource: v.eventSource,
		AccessKeyID: v.id.AccessKeyID,
		Username:    Username(v.id.Type, v.id.UserName, v.id.ARN, v.id.PrincipalID, v.onBehalfOf),
		ReadOnly:    rawBool(v.readOnly),
		Category:    categoryOf(v.eventCategory, v.eventType, v.managementEvent),
	}
	if v.insight && r.EventName == "" {
		r.EventName = v.insightName
		r.EventSource = v.insightSource
	}
	r.Resources = resourcesOf(v.resources)
	return r
}

// decodeRecord is Extract's decoding of raw with a JSON library, for the
// records the scanner leaves to it.
func decodeRecord(raw []byte) (r Record, eventTime string, err error) {
	var v extractView
	if err := json.Unmarshal(raw, &v, lenient); err != nil {
		return Record{}, "", fmt.Errorf("%w: %v", ErrInvalidRecord, err)
	}
	var id identityView
	if len(v.UserIdentity) > 0 && v.UserIdentity[0] == '{' {
		// A userIdentity of odd shape leaves the identity fields empty.
		_ = json.Unmarshal(v.UserIdentity, &id, lenient)
	}
	r = Record{
		Raw:         raw,
		Account:     v.RecipientAccountID,
		Region:      v.AWSRegion,
		EventID:     v.EventID,
		EventName:   v.EventName,
		EventSource: v.EventSource,
		AccessKeyID: id.AccessKeyID,
		Username:    Username(id.Type, id.UserName, id.ARN, id.PrincipalID, onBehalf(id)),
		ReadOnly:    rawBool(v.ReadOnly),
		Category:    categoryOf(v.EventCategory, v.EventType, v.ManagementEvent),
	}
	if r.Account == "" {
		r.Account = id.AccountID
	}
	if v.InsightDetails != nil && r.EventName == "" {
		r.EventName = v.InsightDetails.EventName
		r.EventSource = v.InsightDetails.EventSource
	}
	if len(v.Resources) > 0 && v.Resources[0] == '[' {
		var rs []resourceView
		if json.Unmarshal(v.Resources, &rs, lenient) == nil {
			r.Resources = resourcesOf(rs)
		}
	}
	return r, v.EventTime, nil
}

// resourcesOf turns a record's resources into Resources.
func resourcesOf(rs []resourceView) []Resource {
	var out []Resource
	for _, x := range rs {
		arn := x.ARN
		if arn == "" {
			arn = x.ARNPrefix
		}
		if arn == "" && x.Type == "" {
			continue
		}
		out = append(out, Resource{Type: x.Type, Name: ResourceName(arn), ARN: arn})
	}
	return out
}

// AddDerivedResources gives r, a record Extract built (or one decoded from
// an earlier cairn's encoding), the resources LookupEvents derives when its
// record has none (DeriveResources), read from r.Raw. Only management
// events: Event History shows no other, and event selectors
// (resources.type, resources.ARN: data events) see the record's own
// resources.
func AddDerivedResources(r *Record) {
	if len(r.Resources) > 0 || r.Category != CategoryManagement || !derivesResources(r.EventSource, r.ReadOnly) {
		return
	}
	// A second pass over the record, for these records only, decoding
	// requestParameters and responseElements where it reads them.
	var p derivedView
	if json.Unmarshal(r.Raw, &p, lenient) == nil && len(p.Resources) == 0 {
		r.Resources = deriveFrom(r.EventSource, &p)
	}
}

func onBehalf(id identityView) string {
	if id.OnBehalfOf != nil {
		return id.OnBehalfOf.UserID
	}
	return ""
}

func rawBool(b []byte) Tri {
	switch string(b) {
	case "true", `"true"`:
		return True
	case "false", `"false"`:
		return False
	}
	return Unset
}

func categoryOf(eventCategory, eventType string, managementEvent []byte) Category {
	if eventCategory != "" {
		return ParseCategory(eventCategory)
	}
	switch {
	case eventType == "AwsCloudTrailInsight":
		return CategoryInsight
	case eventType == "AwsVpceEvents":
		return CategoryNetworkActivity
	case rawBool(managementEvent) == False:
		return CategoryData
	}
	return CategoryManagement
}

// Username derives the Username that Event History shows for a caller
// (cairn's rule; AWS does not publish one): IAMUser and others with a
// userName → userName; Root → "root" unless a userName (alias) is given;
// AssumedRole and Role → the role session name, the last part of the ARN;
// FederatedUser → the federated user name; IdentityCenterUser → userName,
// else onBehalfOf.userId; otherwise empty.
func Username(typ, userName, arn, principalID, onBehalfOf string) string {
	switch typ {
	case "AssumedRole", "Role":
		if i := strings.LastIndexByte(arn, '/'); i >= 0 && i+1 < len(arn) {
			return arn[i+1:]
		}
		if i := strings.LastIndexByte(principalID, ':'); i >= 0 && i+1 < len(principalID) {
			return principalID[i+1:]
		}
		return userName
	case "FederatedUser":
		if i := strings.LastIndexByte(arn, '/'); i >= 0 && i+1 < len(arn) {
			return arn[i+1:]
		}
		return userName
	case "Root":
		if userName != "" {
			return userName
		}
		return "root"
	}
	if userName != "" {
		return userName
	}
	return onBehalfOf
}

// ResourceName derives the user-visible name of a resource from its ARN:
// for S3 (arn:aws:s3:::bucket/key) the whole resource part; otherwise the part
// after the last '/' or, without one, after the last ':'. A value that is not
// an ARN is returned unchanged.
func ResourceName(arn string) string {
	if !strings.HasPrefix(arn, "arn:") {
		return arn
	}
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) < 6 {
		return arn
	}
	res := parts[5]
	if parts[2] == "s3" {
		return res
	}
	if i := strings.LastIndexByte(res, '/'); i >= 0 && i+1 < len(res) {
		return res[i+1:]
	}
	if i := strings.LastIndexByte(res, ':'); i >= 0 && i+1 < len(res) {
		return res[i+1:]
	}
	return res
}
