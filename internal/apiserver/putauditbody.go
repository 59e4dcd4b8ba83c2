package apiserver

import (
	"bytes"
	"unicode/utf8"
)

// putAuditEventsBody reads the events of a PutAuditEvents body of the one
// shape the SDKs send, {"auditEvents":[{"id":"...","eventData":"...",
// "eventDataChecksum":"..."}, ...]} (each event's members in any order,
// any of them absent, any whitespace between tokens), in one pass over the
// body. Every string is unquoted into one buffer (jsontext's unquoting,
// appendUnquoted), which becomes one Go string that the events' fields
// are slices of. It returns ok false for any other body (another member,
// a repeated one, an escaped member name, null or a value of another
// type, trailing bytes), for bytes that are not UTF-8, for a control
// character in a string, and for a \u escape of NUL or of half a UTF-16
// surrogate pair: the caller then decodes the body with awsjson.Decode,
// which answers what is wrong with it or reads it. The general decoder
// read the body into a tree of interfaces and then into the structs, 9%
// of the PutAuditEvents benchmark's CPU (issue 15, session 23), for
// calls of 100 events of ~600 bytes each.
func putAuditEventsBody(body []byte) (events []auditEventIn, ok bool) {
	if !utf8.Valid(body) {
		return nil, false
	}
	i := 0
	expect := func(lit string) bool {
		i = skipSpace(body, i)
		if len(body)-i < len(lit) || string(body[i:i+len(lit)]) != lit {
			return false
		}
		i += len(lit)
		return true
	}
	if !expect("{") || !expect(`"auditEvents"`) || !expect(":") || !expect("[") {
		return nil, false
	}
	// Each event's fields as spans of out (start, end; -1: absent), in
	// auditEventIn's order.
	type spans [3][2]int
	var evs []spans
	out := make([]byte, 0, len(body))
	str := func() (start, end int, ok bool) {
		i = skipSpace(body, i)
		if i >= len(body) || body[i] != '"' {
			return 0, 0, false
		}
		start = len(out)
		if out, i, ok = appendUnquoted(out, body, i+1); !ok {
			return 0, 0, false
		}
		return start, len(out), true
	}
	if !expect("]") {
		evs = make([]spans, 0, 100)
		for {
			if !expect("{") {
				return nil, false
			}
			sp := spans{{-1, -1}, {-1, -1}, {-1, -1}}
			if !expect("}") {
				for {
					// A member name as written: one with an escape is
					// the general decoder's.
					i = skipSpace(body, i)
					if i >= len(body) || body[i] != '"' {
						return nil, false
					}
					j := bytes.IndexByte(body[i+1:], '"')
					if j < 0 {
						return nil, false
					}
					name := body[i+1 : i+1+j]
					i += j + 2
					f := -1
					switch string(name) {
					case "id":
						f = 0
					case "eventData":
						f = 1
					case "eventDataChecksum":
						f = 2
					}
					if f < 0 || sp[f][0] >= 0 || !expect(":") {
						return nil, false
					}
					s, e, ok := str()
					if !ok {
						return nil, false
					}
					sp[f] = [2]int{s, e}
					if expect(",") {
						continue
					}
					if !expect("}") {
						return nil, false
					}
					break
				}
			}
			evs = append(evs, sp)
			if expect(",") {
				continue
			}
			if !expect("]") {
				return nil, false
			}
			break
		}
	}
	if !expect("}") || skipSpace(body, i) != len(body) {
		return nil, false
	}
	all := string(out)
	n := 0
	for _, sp := range evs {
		for _, f := range sp {
			if f[0] >= 0 {
				n++
			}
		}
	}
	strs := make([]string, 0, n)
	field := func(f [2]int) *string {
		if f[0] < 0 {
			return nil
		}
		strs = append(strs, all[f[0]:f[1]])
		return &strs[len(strs)-1]
	}
	events = make([]auditEventIn, len(evs))
	for k, sp := range evs {
		events[k] = auditEventIn{ID: field(sp[0]), EventData: field(sp[1]), EventDataChecksum: field(sp[2])}
	}
	return events, true
}
