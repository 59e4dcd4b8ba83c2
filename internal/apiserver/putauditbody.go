package apiserver

import (
	"bytes"
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
	sc, ok := newBodyScanner(body, `"auditEvents"`)
	if !ok {
		return nil, false
	}
	// Each event's fields as spans of sc.out (start, end; -1: absent), in
	// auditEventIn's order.
	type spans [3][2]int
	var evs []spans
	if !sc.expect("]") {
		evs = make([]spans, 0, 100)
		for {
			if !sc.expect("{") {
				return nil, false
			}
			sp := spans{{-1, -1}, {-1, -1}, {-1, -1}}
			if !sc.expect("}") {
				for {
					// A member name as written: one with an escape is
					// the general decoder's.
					sc.i = skipSpace(sc.body, sc.i)
					if sc.i >= len(sc.body) || sc.body[sc.i] != '"' {
						return nil, false
					}
					j := bytes.IndexByte(sc.body[sc.i+1:], '"')
					if j < 0 {
						return nil, false
					}
					name := sc.body[sc.i+1 : sc.i+1+j]
					sc.i += j + 2
					f := -1
					switch string(name) {
					case "id":
						f = 0
					case "eventData":
						f = 1
					case "eventDataChecksum":
						f = 2
					}
					if f < 0 || sp[f][0] >= 0 || !sc.expect(":") {
						return nil, false
					}
					s, e, ok := sc.str()
					if !ok {
						return nil, false
					}
					sp[f] = [2]int{s, e}
					if sc.expect(",") {
						continue
					}
					if !sc.expect("}") {
						return nil, false
					}
					break
				}
			}
			evs = append(evs, sp)
			if sc.expect(",") {
				continue
			}
			if !sc.expect("]") {
				return nil, false
			}
			break
		}
	}
	if !sc.end() {
		return nil, false
	}
	all := string(sc.out)
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
