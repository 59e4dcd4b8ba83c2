package lake

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/lake/engine"
)

// AuditEvent is one custom event sent to a channel (PutAuditEvents).
type AuditEvent struct {
	// ID is the caller's ID of the event within the call.
	ID string
	// Data is the event's JSON (eventData).
	Data string
	// Checksum, when set, is the base64 SHA-256 of Data.
	Checksum *string
}

// PutResult reports each event of a PutAuditEvents call.
type PutResult struct {
	Successful []PutSuccess
	Failed     []PutFailure
}

// PutSuccess is a stored event: the caller's ID and the eventID given.
type PutSuccess struct{ ID, EventID string }

// PutFailure is a refused event: the caller's ID, the error code and a
// message.
type PutFailure struct{ ID, Code, Message string }

// PutAuditEvents validates each event, stores the valid ones in the
// channel's event data stores (durably, before returning) and reports
// each event as successful or failed. The events' IDs are distinct (the
// caller checks). Errors: InvalidChannelARN, ChannelNotFound,
// ChannelInsufficientPermission (a channel of another account), or the
// database's.
func (l *Lake) PutAuditEvents(ctx context.Context, p audit.Principal, channelARN string, events []AuditEvent) (PutResult, error) {
	if err := l.enter(); err != nil {
		return PutResult{}, err
	}
	defer l.work.Done()
	ref := channelARN
	l.fresh(ctx)
	l.mu.Lock()
	i := strings.LastIndex(ref, ":channel/")
	if i < 0 {
		l.mu.Unlock()
		return PutResult{}, audit.Errorf(audit.CodeInvalidChannelARN, "The specified channel ARN is not valid.")
	}
	c := l.channels[ref[i+len(":channel/"):]]
	if c == nil || c.ARN() != ref {
		l.mu.Unlock()
		return PutResult{}, audit.Errorf(audit.CodeChannelNotFound, "The specified channel was not found.")
	}
	if c.Account != p.AccountID {
		l.mu.Unlock()
		return PutResult{}, audit.Errorf(audit.CodeChannelInsufficientPermission, "The caller's account is not permitted to send events to this channel.")
	}
	var stores []string
	for _, d := range c.Destinations {
		if s, err := l.findStoreLocked(c.Account, d.Location); err == nil && s.Status != StatusPendingDeletion {
			stores = append(stores, s.ID)
		}
	}
	region, account := c.Region, c.Account
	channelARN = c.ARN()
	l.mu.Unlock()
	// Push back while the engine's queue of events not yet in its tables
	// is full (the DuckDB engine's journal, whose writer moves them into
	// the table): the client's SDK backs off and retries, and the call
	// costs no validation. Queueing more would only make callers wait
	// longer, or grow a backlog the table never catches up with.
	if b, ok := l.eng.(backlogger); ok && b.Backlogged() {
		l.metrics.throttled.Inc()
		return PutResult{}, audit.Errorf(audit.CodeThrottling, "Rate exceeded")
	}

	now := l.opts.Now().UTC()
	out := PutResult{Successful: []PutSuccess{}, Failed: []PutFailure{}}
	rows := make([]engine.Row, 0, len(events)*len(stores))
	okIDs := make([]PutSuccess, 0, len(events))
	rb := newRecordBuilder(account, region, channelARN, now)
	for _, e := range events {
		raw, eventID, code, msg := rb.record(e)
		if code != "" {
			out.Failed = append(out.Failed, PutFailure{e.ID, code, msg})
			continue
		}
		for _, s := range stores {
			rows = append(rows, engine.Row{Store: s, Raw: raw})
		}
		okIDs = append(okIDs, PutSuccess{e.ID, eventID})
	}
	if len(rows) > 0 {
		if err := l.eng.Insert(ctx, rows, 0); err != nil {
			return PutResult{}, err
		}
		l.wroteBehind(ctx)
	}
	out.Successful = append(out.Successful, okIDs...)
	l.mu.Lock()
	if c := l.channels[channelARN[strings.LastIndex(channelARN, "/")+1:]]; c != nil {
		c.LastAttempt = now
		c.LastAttemptEvent = ""
		if len(okIDs) > 0 {
			c.LastSuccess, c.LastSuccessEvent = now, okIDs[len(okIDs)-1].EventID
			c.LastAttemptEvent = c.LastSuccessEvent
		}
		c.LastErrorCode = ""
		if len(out.Failed) > 0 {
			c.LastErrorCode = out.Failed[len(out.Failed)-1].Code
		}
	}
	l.mu.Unlock()
	return out, nil
}

// backlogger is an engine that queues small inserts before its tables
// (lake/duckdb's journal) and says when that queue is full.
type backlogger interface{ Backlogged() bool }

// Field limits of eventData (facts §8.5).
var fieldLimits = [...]struct {
	name     string
	max      int
	required bool
}{
	{"version", 256, true}, {"userAgent", 1024, false}, {"eventSource", 1024, true}, {"eventName", 1024, true},
	{"eventTime", 64, true}, {"UID", 1024, true}, {"errorCode", 256, false}, {"errorMessage", 256, false},
	{"sourceIPAddress", 64, false}, {"recipientAccountId", 12, true},
}

// eventTimeFormat is eventData.eventTime's form, yyyy-MM-ddTHH:mm:ss with
// an optional Z (time.Parse alone would take one-digit hours).
var eventTimeFormat = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z?$`)

// The fields of eventData that auditRecord reads, by their exact names
// (encoding/json would match a struct's fields case-insensitively, taking
// "TYPE" for "type"): the limited ones (fieldLimits' indexes), then these.
const (
	fUserIdentity = len(fieldLimits) + iota
	fRequestParameters
	fResponseElements
	fAdditionalEventData
	nFields
)

// eventFieldIndex maps a field's name to its index in the values
// readObject collects.
var eventFieldIndex = func() map[string]int {
	m := map[string]int{"userIdentity": fUserIdentity, "requestParameters": fRequestParameters,
		"responseElements": fResponseElements, "additionalEventData": fAdditionalEventData}
	for i, f := range fieldLimits {
		m[f.name] = i
	}
	return m
}()

// objectLimits are the size limits of eventData's free-form objects.
var objectLimits = []struct {
	field int
	name  string
	max   int
}{
	{fRequestParameters, "requestParameters", 100 << 10}, {fResponseElements, "responseElements", 100 << 10},
	{fAdditionalEventData, "additionalEventData", 28 << 10},
}

// readObject reads data, a JSON object, with dec and stores into vals the
// values of its members that index names (the last of duplicates, as
// encoding/json does), as data's own bytes. It returns "" or the
// InvalidData message: data is not one JSON object (trailing whitespace
// aside).
func readObject(dec *jsontext.Decoder, data []byte, index map[string]int, vals []jsontext.Value) string {
	const notObject = "eventData is not a JSON object."
	// A bytes.Buffer's bytes are parsed where they are (a bytes.Reader's
	// were copied into the decoder's own buffer, grown as it read).
	dec.Reset(bytes.NewBuffer(data), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return notObject
	}
	for dec.PeekKind() == '"' {
		name, err := dec.ReadToken()
		if err != nil {
			return notObject
		}
		i, ok := index[name.String()]
		if !ok {
			if dec.SkipValue() != nil {
				return notObject
			}
			continue
		}
		v, err := dec.ReadValue()
		if err != nil {
			return notObject
		}
		end := int(dec.InputOffset())
		if start := end - len(v); start >= 0 && end <= len(data) && bytes.Equal(data[start:end], v) {
			vals[i] = data[start:end:end]
		} else {
			vals[i] = bytes.Clone(v)
		}
	}
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '}' {
		return notObject
	}
	// What follows the object: encoding/json's Decoder.More took a closing
	// bracket for the end of a stream, so such an event is checked on and
	// refused at the end, when the record's json.Compact finds the bracket.
	rest := bytes.TrimLeft(data[dec.InputOffset():], " \t\r\n")
	if len(rest) == 0 || rest[0] == ']' || rest[0] == '}' {
		return ""
	}
	return notObject
}

// jsonString returns the JSON string v's text (false: v is not a string).
func jsonString(v jsontext.Value) (string, bool) {
	if len(v) >= 2 && v[0] == '"' {
		if in := v[1 : len(v)-1]; bytes.IndexByte(in, '\\') < 0 && bytes.IndexByte(in, '"') < 0 && utf8.Valid(in) {
			return string(in), true
		}
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return "", false
	}
	return s, true
}

// auditRecord validates one event and builds the stored record, or returns
// the per-event error code and message. eventData is read with one token
// scan of its top level (and of userIdentity's); the answers and the
// stored bytes are those of the encoding/json version it replaced
// (putaudit_ref_test.go), which spent 17% of a PutAuditEvents call's CPU
// in decoding maps and re-encoding the record.
func (l *Lake) auditRecord(e AuditEvent, account, region, channelARN string, now time.Time) (raw []byte, eventID, code, msg string) {
	return newRecordBuilder(account, region, channelARN, now).record(e)
}

// recordBuilder builds the records of one call's events (auditRecord):
// one token decoder for all of them, and the fields every record of the
// call shares (channel, account, region, ingestion time) encoded once.
type recordBuilder struct {
	dec     *jsontext.Decoder
	account string
	shared  []byte // ,"awsRegion":... to "eventData": (the call's fields)
	room    int    // a record's capacity beyond its eventData
}

func newRecordBuilder(account, region, channelARN string, now time.Time) *recordBuilder {
	rb := &recordBuilder{dec: jsontext.NewDecoder(bytes.NewReader(nil)), account: account}
	b := append([]byte(nil), `,"awsRegion":`...)
	b = audit.AppendJSONString(b, region, false)
	b = append(b, `,"recipientAccountId":`...)
	b = audit.AppendJSONString(b, account, false)
	b = append(b, `,"metadata":{"channelARN":`...)
	b = audit.AppendJSONString(b, channelARN, false)
	b = append(b, `,"ingestionTime":`...)
	b = audit.AppendJSONString(b, now.Format("2006-01-02T15:04:05Z"), false)
	b = append(b, `},"eventData":`...)
	rb.shared, rb.room = b, len(channelARN)+len(region)+len(account)+512
	return rb
}

// record is auditRecord for one event of rb's call.
func (rb *recordBuilder) record(e AuditEvent) (raw []byte, eventID, code, msg string) {
	account, dec := rb.account, rb.dec
	data := []byte(e.Data)
	if e.Checksum != nil {
		sum := sha256.Sum256(data)
		if base64.StdEncoding.EncodeToString(sum[:]) != *e.Checksum {
			return nil, "", "InvalidChecksum", "The eventDataChecksum does not match the SHA-256 of eventData."
		}
	}
	var ev [nFields]jsontext.Value
	if m := readObject(dec, data, eventFieldIndex, ev[:]); m != "" {
		return nil, "", "InvalidData", m
	}
	// Where the object ends: only whitespace after it means the decoder
	// has read all of eventData as valid JSON.
	end := int(dec.InputOffset())
	whole := len(bytes.TrimLeft(data[end:], " \t\r\n")) == 0
	var strs [len(fieldLimits)]string
	for i, f := range fieldLimits {
		v := ev[i]
		if v == nil || string(v) == "null" {
			if f.required {
				return nil, "", "FieldNotFound", "eventData has no " + f.name + "."
			}
			continue
		}
		s, ok := jsonString(v)
		if !ok {
			return nil, "", "InvalidData", f.name + " must be a string."
		}
		if len(s) > f.max {
			return nil, "", "FieldTooLong", f.name + " is longer than its limit."
		}
		strs[i] = s
	}
	str := func(name string) string { return strs[eventFieldIndex[name]] }
	var ui [2]jsontext.Value
	if v := ev[fUserIdentity]; v == nil || string(v) == "null" {
		return nil, "", "FieldNotFound", "eventData has no userIdentity."
	} else if v[0] != '{' || readObject(dec, v, identityFieldIndex, ui[:]) != "" {
		return nil, "", "InvalidData", "userIdentity must be an object."
	}
	for i, f := range []struct {
		name string
		max  int
	}{{"type", 128}, {"principalId", 1024}} {
		v := ui[i]
		if v == nil || string(v) == "null" {
			return nil, "", "FieldNotFound", "userIdentity needs type and principalId."
		}
		s, ok := jsonString(v)
		if !ok {
			return nil, "", "InvalidData", "userIdentity." + f.name + " must be a string."
		}
		if len(s) > f.max {
			return nil, "", "FieldTooLong", "userIdentity.type or principalId is longer than its limit."
		}
	}
	for _, o := range objectLimits {
		if v := ev[o.field]; v != nil && string(v) != "null" {
			if len(v) > o.max {
				return nil, "", "FieldTooLong", o.name + " is larger than its limit."
			}
			if v[0] != '{' {
				return nil, "", "InvalidData", o.name + " must be a JSON object."
			}
		}
	}
	if str("recipientAccountId") != account {
		return nil, "", "InvalidRecipient", "recipientAccountId must be the channel owner's account."
	}
	t, err := time.Parse("2006-01-02T15:04:05", strings.TrimSuffix(str("eventTime"), "Z"))
	if err != nil || !eventTimeFormat.MatchString(str("eventTime")) {
		return nil, "", "InvalidData", "eventTime must be yyyy-MM-ddTHH:mm:ss (UTC)."
	}
	if ip := str("sourceIPAddress"); ip != "" && net.ParseIP(ip) == nil {
		return nil, "", "InvalidData", "sourceIPAddress must be an IPv4 or IPv6 address."
	}
	if str("eventSource") == "" || str("eventName") == "" {
		return nil, "", "InvalidData", "eventSource and eventName must not be empty."
	}
	eventID = audit.NewID()
	// The record as encoding/json wrote its struct (fields in this order,
	// metadata's keys sorted, no HTML escaping, eventData compacted).
	// The capacity holds the whole record: the fixed text around the
	// fields is ~310 bytes, and json.Compact grows its buffer by
	// len(data) first, which with less room copied the record into a
	// buffer twice its size (3% of a call's CPU).
	b := make([]byte, 0, len(data)+rb.room)
	b = append(b, `{"eventVersion":"1.0","eventCategory":"ActivityAuditLog","eventType":"ActivityLog","eventID":`...)
	b = audit.AppendJSONString(b, eventID, false)
	b = append(b, `,"eventTime":`...)
	b = audit.AppendJSONString(b, t.UTC().Format("2006-01-02T15:04:05Z"), false)
	b = append(b, rb.shared...)
	if whole {
		b = appendCompact(b, data[:end])
		return append(b, '}'), eventID, "", ""
	}
	buf := bytes.NewBuffer(b)
	if err := json.Compact(buf, data); err != nil {
		return nil, "", "InvalidData", "eventData is not valid JSON."
	}
	buf.WriteByte('}')
	return buf.Bytes(), eventID, "", ""
}

// appendCompact appends data, JSON text the decoder has read as valid,
// without the whitespace between its tokens: json.Compact's bytes without
// its validation, which repeated the decoder's byte by byte through
// encoding/json's scanner (2.9% of the PutAuditEvents benchmark's CPU,
// session 24). Strings are copied as they are.
func appendCompact(b, data []byte) []byte {
	from := 0 // the start of the bytes not yet copied
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '"':
			// To the closing quote: the first one after an even run of
			// backslashes.
			for i++; ; {
				j := bytes.IndexByte(data[i:], '"')
				if j < 0 {
					return append(b, data[from:]...) // not reached: data is valid
				}
				i += j
				k := i
				for k > 0 && data[k-1] == '\\' {
					k--
				}
				if (i-k)%2 == 0 {
					break
				}
				i++
			}
		case ' ', '\t', '\r', '\n':
			b = append(b, data[from:i]...)
			from = i + 1
		}
	}
	return append(b, data[from:]...)
}

// identityFieldIndex indexes userIdentity's checked fields.
var identityFieldIndex = map[string]int{"type": 0, "principalId": 1}
