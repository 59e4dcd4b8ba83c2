package apiserver

import (
	"context"
	"encoding/json"
	"time"
	"unicode/utf8"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/awsjson"
)

// Lookup limits. CloudTrail allows one attribute; cairn allows several.
const (
	defaultMaxResults = 50
	maxMaxResults     = 50
	maxAttributes     = 8
	maxAttrValueLen   = 2000
)

type lookupAttribute struct {
	AttributeKey   *string
	AttributeValue *string
}

type lookupEventsInput struct {
	LookupAttributes []lookupAttribute
	StartTime        *awsjson.Timestamp
	EndTime          *awsjson.Timestamp
	EventCategory    *string
	MaxResults       *int64
	NextToken        *string
}

type resourceOut struct {
	ResourceType string `json:"ResourceType,omitempty"`
	ResourceName string `json:"ResourceName,omitempty"`
}

// eventOut is an event of a LookupEvents page, written by its AppendJSON
// (never by encoding/json: CloudTrailEvent is the record's bytes, not a
// copy of them as a string, and is written as a JSON string).
type eventOut struct {
	EventID         string
	EventName       string
	ReadOnly        string
	AccessKeyID     string
	EventTime       awsjson.Timestamp
	EventSource     string
	Username        string
	Resources       []resourceOut
	CloudTrailEvent []byte
}

type lookupEventsOutput struct {
	Events    []eventOut `json:"Events"`
	NextToken string     `json:"NextToken,omitempty"`
}

// AppendJSON appends the page as encoding/json writes it without HTML
// escaping, byte for byte (TestLookupOutputJSON), without reflection
// (awsjson.JSONAppender).
func (o lookupEventsOutput) AppendJSON(b []byte) []byte {
	b = append(b, `{"Events":`...)
	if o.Events == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range o.Events {
			if i > 0 {
				b = append(b, ',')
			}
			b = o.Events[i].appendJSON(b)
		}
		b = append(b, ']')
	}
	if o.NextToken != "" {
		b = append(b, `,"NextToken":`...)
		b = audit.AppendJSONString(b, o.NextToken, false)
	}
	return append(b, '}')
}

func (e *eventOut) appendJSON(b []byte) []byte {
	b = append(b, `{"EventId":`...)
	b = audit.AppendJSONString(b, e.EventID, false)
	field := func(name, v string) {
		if v != "" {
			b = append(b, name...)
			b = audit.AppendJSONString(b, v, false)
		}
	}
	field(`,"EventName":`, e.EventName)
	field(`,"ReadOnly":`, e.ReadOnly)
	field(`,"AccessKeyId":`, e.AccessKeyID)
	b = append(b, `,"EventTime":`...)
	b = e.EventTime.AppendJSON(b)
	field(`,"EventSource":`, e.EventSource)
	field(`,"Username":`, e.Username)
	b = append(b, `,"Resources":`...)
	if e.Resources == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, r := range e.Resources {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '{')
			sep := ""
			if r.ResourceType != "" {
				b = append(b, `"ResourceType":`...)
				b = audit.AppendJSONString(b, r.ResourceType, false)
				sep = ","
			}
			if r.ResourceName != "" {
				b = append(b, sep+`"ResourceName":`...)
				b = audit.AppendJSONString(b, r.ResourceName, false)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"CloudTrailEvent":`...)
	b = audit.AppendJSONString(b, e.CloudTrailEvent, false)
	return append(b, '}')
}

// insightKeys are the attributes valid with EventCategory=insight.
var insightKeys = map[audit.AttributeKey]bool{
	audit.AttrEventID: true, audit.AttrEventName: true, audit.AttrEventSource: true,
	audit.AttrAccountID: true, audit.AttrAWSRegion: true,
}

// lookupScope is whose Event History a lookup reads: the caller's own account
// in the signed region, or for a responder every account of it. The scope
// attributes AccountId and AwsRegion narrow it, ANDed as the other
// attributes: a responder's AccountId names one account and its AwsRegion
// the region read instead of the signed one (* for every region); a
// non-responder's must name its own account and signed region (or *),
// else the answer is empty (as for a value no record has: it says nothing
// of other accounts).
type lookupScope struct {
	responder   bool
	anyAccount  bool
	account     string
	anyRegion   bool
	region      string
	regionGiven bool
	empty       bool
}

// everyRegion is the AwsRegion value of every region.
const everyRegion = "*"

// narrow applies a validated scope attribute.
func (sc *lookupScope) narrow(k audit.AttributeKey, v string) {
	switch k {
	case audit.AttrAccountID:
		if sc.anyAccount {
			sc.anyAccount, sc.account = false, v
		} else if v != sc.account {
			sc.empty = true
		}
	case audit.AttrAWSRegion:
		switch {
		case v == everyRegion:
			// Every region ANDed with a region is that region.
			sc.anyRegion = sc.responder && !sc.regionGiven
		case sc.responder && !sc.regionGiven:
			sc.region, sc.regionGiven, sc.anyRegion = v, true, false
		case v != sc.region:
			sc.empty = true
		}
	}
}

// checkScopeValue validates a scope attribute's value.
func checkScopeValue(k audit.AttributeKey, v string) error {
	switch k {
	case audit.AttrAccountID:
		if !audit.ValidAccount(v) {
			return audit.Errorf(audit.CodeInvalidLookupAttributes, "AttributeValue for AccountId must be a 12-digit account ID.")
		}
	case audit.AttrAWSRegion:
		if v != everyRegion && !audit.ValidRecordRegion(v) {
			return audit.Errorf(audit.CodeInvalidLookupAttributes, "AttributeValue for AwsRegion must be a region name such as us-east-1, or * for every region.")
		}
	}
	return nil
}

func (s *Server) lookupEvents(ctx context.Context, c *call) (any, error) {
	var in lookupEventsInput
	if err := awsjson.Decode(c.body, &in); err != nil {
		return nil, err
	}
	q := audit.Query{
		Account:  c.caller.AccountID,
		Region:   c.caller.Region,
		Category: audit.CategoryManagement,
		Limit:    defaultMaxResults,
	}
	if in.EventCategory != nil {
		if *in.EventCategory != "insight" {
			return nil, audit.Errorf(audit.CodeInvalidEventCategory, "EventCategory %q is not valid. The only valid value is insight.", audit.Truncate(*in.EventCategory, 128))
		}
		q.Category = audit.CategoryInsight
	}
	if in.MaxResults != nil {
		if *in.MaxResults < 1 || *in.MaxResults > maxMaxResults {
			return nil, audit.Errorf(audit.CodeInvalidMaxResults, "MaxResults must be between 1 and %d.", maxMaxResults)
		}
		q.Limit = int(*in.MaxResults)
	}
	sc := lookupScope{responder: c.caller.Responder, anyAccount: c.caller.Responder, account: c.caller.AccountID, region: c.caller.Region}
	if len(in.LookupAttributes) > maxAttributes {
		return nil, audit.Errorf(audit.CodeInvalidLookupAttributes, "At most %d lookup attributes are allowed.", maxAttributes)
	}
	for _, a := range in.LookupAttributes {
		if a.AttributeKey == nil || a.AttributeValue == nil {
			return nil, audit.Errorf(audit.CodeInvalidLookupAttributes, "Each lookup attribute needs an AttributeKey and an AttributeValue.")
		}
		k, v := audit.AttributeKey(*a.AttributeKey), *a.AttributeValue
		scoped := k == audit.AttrAccountID || k == audit.AttrAWSRegion
		if !k.Valid() && !scoped {
			return nil, audit.Errorf(audit.CodeInvalidLookupAttributes, "AttributeKey %q is not valid. Valid keys: EventId, EventName, ReadOnly, Username, ResourceType, ResourceName, EventSource, AccessKeyId (and cairn's AccountId, AwsRegion).", audit.Truncate(string(k), 128))
		}
		if q.Category == audit.CategoryInsight && !insightKeys[k] {
			return nil, audit.Errorf(audit.CodeInvalidLookupAttributes, "AttributeKey %s is not valid with EventCategory insight. Valid keys: EventId, EventName, EventSource (and cairn's AccountId, AwsRegion).", k)
		}
		if n := utf8.RuneCountInString(v); n < 1 || n > maxAttrValueLen {
			return nil, audit.Errorf(audit.CodeInvalidLookupAttributes, "AttributeValue for %s must be 1 to %d characters long.", k, maxAttrValueLen)
		}
		if k == audit.AttrReadOnly && v != "true" && v != "false" {
			return nil, audit.Errorf(audit.CodeInvalidLookupAttributes, "AttributeValue for ReadOnly must be true or false.")
		}
		if scoped {
			if err := checkScopeValue(k, v); err != nil {
				return nil, err
			}
			sc.narrow(k, v)
			continue
		}
		q.Attributes = append(q.Attributes, audit.Attribute{Key: k, Value: v})
	}
	q.AnyAccount, q.Account, q.AnyRegion, q.Region = sc.anyAccount, sc.account, sc.anyRegion, sc.region
	if q.AnyAccount {
		q.Account = ""
	}
	if q.AnyRegion {
		q.Region = ""
	}
	var start, end *time.Time
	if in.StartTime != nil {
		t := in.StartTime.Time()
		start = &t
	}
	if in.EndTime != nil {
		t := in.EndTime.Time()
		end = &t
	}
	if start != nil && end != nil && start.After(*end) {
		return nil, audit.Errorf(audit.CodeInvalidTimeRange, "Start time must be earlier than or equal to end time.")
	}
	fp := fingerprint(&q, start, end)
	if in.NextToken != nil {
		cur, err := s.tokens.decode(fp, *in.NextToken)
		if err != nil {
			return nil, audit.Errorf(audit.CodeInvalidNextToken, "Invalid NextToken: it is malformed, or was issued for other parameters.")
		}
		q.After = cur
	}
	now := s.cfg.Now()
	q.End = now
	if end != nil && end.Before(now) {
		q.End = *end
	}
	if start != nil {
		q.Start = *start
	}
	if s.cfg.Retention > 0 {
		// Expired records (received longer ago than the retention) are
		// never returned, whether or not the janitor has removed them yet.
		q.ReceivedSince = now.Add(-s.cfg.Retention)
	}
	out := lookupEventsOutput{Events: []eventOut{}}
	if q.Start.After(q.End) || sc.empty {
		return out, nil
	}
	page, err := s.cfg.History.Lookup(ctx, q)
	if err != nil {
		return nil, err
	}
	out.Events = make([]eventOut, 0, len(page.Records))
	for i := range page.Records {
		out.Events = append(out.Events, eventFor(&page.Records[i]))
	}
	if page.Next != nil {
		out.NextToken = s.tokens.encode(fp, page.Next)
	}
	return out, nil
}

func eventFor(r *audit.Record) eventOut {
	e := eventOut{
		EventID:         r.EventID,
		EventName:       r.EventName,
		ReadOnly:        r.ReadOnly.String(),
		AccessKeyID:     r.AccessKeyID,
		EventTime:       awsjson.NewTimestamp(r.Time),
		EventSource:     r.EventSource,
		Username:        r.Username,
		Resources:       []resourceOut{},
		CloudTrailEvent: r.Raw,
	}
	for _, res := range r.Resources {
		e.Resources = append(e.Resources, resourceOut{ResourceType: res.Type, ResourceName: res.Name})
	}
	return e
}

type importRecordsInput struct {
	Records []string
}

type importFailure struct {
	Index        int    `json:"Index"`
	ErrorCode    string `json:"ErrorCode"`
	ErrorMessage string `json:"ErrorMessage"`
}

type importRecordsOutput struct {
	Inserted   int             `json:"Inserted"`
	Duplicates int             `json:"Duplicates"`
	Failed     []importFailure `json:"Failed"`
}

const maxImportRecords = 1000

// importRecords is cairn's extension operation behind `cairn import
// --endpoint-url`: it stores records the caller sends, byte for byte. A
// caller imports into its own account only; a responder into any. Records
// are kept whatever their eventTime: Event History's retention counts
// from their import.
func (s *Server) importRecords(ctx context.Context, c *call) (any, error) {
	if c.file != nil {
		return s.importFile(ctx, c)
	}
	var raws [][]byte
	var bad map[int]string // framed records refused before Extract, by index
	ok := false
	if c.frames != nil {
		var err error
		if raws, bad, err = importRecordFrames(c.frames); err != nil {
			return nil, err
		}
		ok = true
	} else {
		raws, ok = importRecordsBody(c.body)
	}
	if !ok {
		var in importRecordsInput
		if err := awsjson.Decode(c.body, &in); err != nil {
			return nil, err
		}
		raws = make([][]byte, len(in.Records))
		for i, r := range in.Records {
			raws[i] = []byte(r)
		}
	}
	if len(raws) > maxImportRecords {
		return nil, audit.Errorf(audit.CodeInvalidParameter, "At most %d records per call.", maxImportRecords)
	}
	out := importRecordsOutput{Failed: []importFailure{}}
	recs := make([]audit.Record, 0, len(raws))
	for i, raw := range raws {
		if msg, refused := bad[i]; refused {
			out.Failed = append(out.Failed, importFailure{i, "InvalidRecord", msg})
			continue
		}
		rec, err := audit.Extract(raw)
		if err == nil {
			err = audit.CheckImported(&rec)
		}
		switch {
		case err != nil:
			out.Failed = append(out.Failed, importFailure{i, "InvalidRecord", err.Error()})
		case !c.caller.Responder && rec.Account != c.caller.AccountID:
			out.Failed = append(out.Failed, importFailure{i, "AccountMismatch", accountMismatch(rec.Account)})
		default:
			recs = append(recs, rec)
		}
	}
	if err := s.admitOthers(c, recs); err != nil {
		return nil, err
	}
	// Record only the count: the records themselves are not parameters.
	params, _ := json.Marshal(map[string]int{"Records": len(raws)})
	failed := len(out.Failed)
	var res audit.AppendResult
	var err error
	if sr, ok := s.cfg.Recorder.(SelfRecorder); ok && c.durableRecord() {
		// The call's own record goes with its records, in one journal
		// write. It is made from a copy of c, read by the goroutine
		// writing the group while this one waits.
		own := *c
		own.body = params
		ev := s.event(&own, nil)
		var recorded bool
		res, recorded, err = sr.SubmitRecorded(ctx, recs, func(r audit.AppendResult) (audit.Record, error) {
			ev.ResponseElements = importResponse(r, failed)
			return eventRecord(ev)
		})
		c.recorded = recorded
	} else {
		res, err = s.cfg.Recorder.Submit(ctx, recs...)
	}
	if err != nil {
		return nil, err
	}
	out.Inserted, out.Duplicates = res.Inserted, res.Duplicates
	c.responseElements = importResponse(res, failed)
	c.body = params
	return out, nil
}

// admitOthers asks the Recorder (RecordsAdmitter) whether a responder's
// records may be queued: they are of other accounts, whose share of the
// pipeline Admit did not count. Every ImportRecords body (JSON, frames, a
// log file) goes through it; a caller that is not a responder imports its
// own account's records only, which Admit counted.
func (s *Server) admitOthers(c *call, recs []audit.Record) error {
	if ra, ok := s.cfg.Recorder.(RecordsAdmitter); ok && c.caller.Responder {
		return ra.AdmitRecords(c.caller.AccountID, recs)
	}
	return nil
}

// importResponse is the responseElements of an ImportRecords call's record.
func importResponse(res audit.AppendResult, failed int) []byte {
	b, _ := json.Marshal(map[string]int{"inserted": res.Inserted, "duplicates": res.Duplicates, "failed": failed})
	return b
}
