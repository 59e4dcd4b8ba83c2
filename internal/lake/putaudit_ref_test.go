package lake

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net"
	"strings"
	"time"
)

// auditRecordRef is auditRecord as it was before it read eventData with
// one token scan (encoding/json into maps, the record through an
// Encoder): the reference its replacement must answer as (eventID aside).
func auditRecordRef(e AuditEvent, account, region, channelARN string, now time.Time) (raw []byte, eventID, code, msg string) {
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
	eventID = "00000000-0000-4000-8000-000000000000"
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
	return raw, eventID, "", ""
}
