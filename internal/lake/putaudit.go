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

	now := l.opts.Now().UTC()
	out := PutResult{Successful: []PutSuccess{}, Failed: []PutFailure{}}
	var rows []engine.Row
	var okIDs []PutSuccess
	for _, e := range events {
		raw, eventID, code, msg := l.auditRecord(e, account, region, channelARN, now)
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
		l.wrote(ctx)
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

// Field limits of eventData (facts §8.5).
var fieldLimits = []struct {
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

// auditRecord validates one event and builds the stored record, or returns
// the per-event error code and message.
func (l *Lake) auditRecord(e AuditEvent, account, region, channelARN string, now time.Time) (raw []byte, eventID, code, msg string) {
	data := []byte(e.Data)
	if e.Checksum != nil {
		sum := sha256.Sum256(data)
		if base64.StdEncoding.EncodeToString(sum[:]) != *e.Checksum {
			return nil, "", "InvalidChecksum", "The eventDataChecksum does not match the SHA-256 of eventData."
		}
	}
	var ev map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&ev); err != nil || ev == nil || dec.More() {
		return nil, "", "InvalidData", "eventData is not a JSON object."
	}
	for _, f := range fieldLimits {
		v, ok := ev[f.name]
		if !ok || string(v) == "null" {
			if f.required {
				return nil, "", "FieldNotFound", "eventData has no " + f.name + "."
			}
			continue
		}
		var s string
		if json.Unmarshal(v, &s) != nil {
			return nil, "", "InvalidData", f.name + " must be a string."
		}
		if len(s) > f.max {
			return nil, "", "FieldTooLong", f.name + " is longer than its limit."
		}
	}
	// userIdentity's fields by their exact names (encoding/json would match
	// a struct's fields case-insensitively, taking "TYPE" for "type").
	var ui map[string]json.RawMessage
	if v, ok := ev["userIdentity"]; !ok || string(v) == "null" {
		return nil, "", "FieldNotFound", "eventData has no userIdentity."
	} else if json.Unmarshal(v, &ui) != nil {
		return nil, "", "InvalidData", "userIdentity must be an object."
	}
	for _, f := range []struct {
		name string
		max  int
	}{{"type", 128}, {"principalId", 1024}} {
		v, ok := ui[f.name]
		if !ok || string(v) == "null" {
			return nil, "", "FieldNotFound", "userIdentity needs type and principalId."
		}
		var s string
		if json.Unmarshal(v, &s) != nil {
			return nil, "", "InvalidData", "userIdentity." + f.name + " must be a string."
		}
		if len(s) > f.max {
			return nil, "", "FieldTooLong", "userIdentity.type or principalId is longer than its limit."
		}
	}
	for name, max := range map[string]int{"requestParameters": 100 << 10, "responseElements": 100 << 10, "additionalEventData": 28 << 10} {
		if v, ok := ev[name]; ok && string(v) != "null" {
			if len(v) > max {
				return nil, "", "FieldTooLong", name + " is larger than its limit."
			}
			if v[0] != '{' {
				return nil, "", "InvalidData", name + " must be a JSON object."
			}
		}
	}
	var str = func(name string) string { var s string; _ = json.Unmarshal(ev[name], &s); return s }
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
	rec := struct {
		EventVersion       string          `json:"eventVersion"`
		EventCategory      string          `json:"eventCategory"`
		EventType          string          `json:"eventType"`
		EventID            string          `json:"eventID"`
		EventTime          string          `json:"eventTime"`
		AWSRegion          string          `json:"awsRegion"`
		RecipientAccountID string          `json:"recipientAccountId"`
		Metadata           any             `json:"metadata"`
		EventData          json.RawMessage `json:"eventData"`
	}{"1.0", "ActivityAuditLog", "ActivityLog", eventID, t.UTC().Format("2006-01-02T15:04:05Z"), region, account,
		map[string]string{"ingestionTime": now.Format("2006-01-02T15:04:05Z"), "channelARN": channelARN}, json.RawMessage(data)}
	var buf bytes.Buffer
	if err := json.Compact(&buf, data); err != nil {
		return nil, "", "InvalidData", "eventData is not valid JSON."
	}
	rec.EventData = buf.Bytes()
	// Without HTML escaping: json.Marshal would rewrite eventData's &, <
	// and > as \u0026, \u003c and \u003e.
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rec); err != nil {
		return nil, "", "InvalidData", "eventData cannot be stored."
	}
	raw = bytes.TrimSuffix(out.Bytes(), []byte("\n"))
	_ = audit.FormatTime
	return raw, eventID, "", ""
}
