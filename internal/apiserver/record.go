package apiserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"unicode"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/cairn-audit/cairn/internal/audit"
)

// maxParams is the size above which CloudTrail leaves requestParameters out
// of a record (it writes null).
const maxParams = 100 << 10

// requestParameters returns the call's input as CloudTrail records it for
// JSON services: the request members with the first letter of every member
// name lower-cased (MaxResults → maxResults), in request order. An empty,
// member-less or unparsable body gives null.
func requestParameters(body []byte) json.RawMessage {
	if len(bytes.TrimSpace(body)) == 0 || len(body) > maxParams {
		return nil
	}
	out, err := lowerMembers(body)
	if err != nil || string(out) == "{}" || len(out) > maxParams {
		return nil
	}
	return out
}

// dataParameters are the requestParameters of a cloudtrail-data
// (REST-JSON) call: PutAuditEvents' channel as the URI names it,
// {"channelArn":"..."}, or null without one. Not the body: its
// auditEvents are the events themselves (up to 1 MB), which the channel's
// stores hold, and which the record copied whole (lower-cased, then
// compacted again; 6.6% of the PutAuditEvents benchmark's CPU in session
// 23, and ~60 KB a call of 100 events into every trail logging data
// events). AWS's records of data calls name the resource, not the payload
// (Lambda Invoke, S3 PutObject, DynamoDB PutItem's item); what it records
// for PutAuditEvents is not in cairn's sources (a cairn choice). The
// externalId is left out too: the channel's policy may use it as a
// shared secret.
func dataParameters(op string, q url.Values) json.RawMessage {
	arn := q.Get("channelArn")
	if op != "PutAuditEvents" || arn == "" || len(arn) > maxParams {
		return nil
	}
	out := make([]byte, 0, len(arn)+32)
	out = append(out, `{"channelArn":`...)
	out = audit.AppendJSONString(out, arn, true)
	if out = append(out, '}'); len(out) > maxParams {
		// Escaping can make an ARN of maxParams' size six times larger
		// ('<' is \u003c): bounded as the encoded value, as CloudTrail
		// bounds requestParameters.
		return nil
	}
	return out
}

// memberlessParameters are the requestParameters AWS records for a call
// that sends no members, where it records its defaults rather than null:
// an empty DescribeTrails is recorded as {"trailNameList": [],
// "includeShadowTrails": true} (testdata/real: invictus-ir-aws_dataset,
// three records; a DescribeTrails naming trails records only trailNameList).
var memberlessParameters = map[string]json.RawMessage{
	"DescribeTrails": json.RawMessage(`{"trailNameList":[],"includeShadowTrails":true}`),
}

// operationParameters is requestParameters with op's recorded defaults
// for a call without members.
func operationParameters(op string, body []byte) json.RawMessage {
	p := requestParameters(body)
	if p == nil && len(body) <= maxParams {
		if d, ok := memberlessParameters[op]; ok {
			var v map[string]any
			// Only a body that is empty or an empty object: an
			// unparsable one stays null.
			if t := bytes.TrimSpace(body); len(t) == 0 || json.Unmarshal(t, &v) == nil && len(v) == 0 {
				return d
			}
		}
	}
	return p
}

// lowerMembers rewrites one JSON value, lower-casing the first letter of
// every object key. It keeps member order and values exactly (numbers are
// not reformatted); strings come out as encoding/json writes them (escapes
// decoded, then <, >, &, U+2028 and U+2029 escaped), as the recorded
// parameters always were. Read with jsontext: encoding/json's Token API
// boxed every token, and lowering a PutAuditEvents body of 100 events was
// 8% of that benchmark's CPU.
func lowerMembers(in []byte) ([]byte, error) {
	dec := jsontext.NewDecoder(bytes.NewReader(in), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	out := make([]byte, 0, len(in)+16)
	// Per open object or array: whether it is an object, and how many
	// tokens (names and values) it has had.
	type level struct {
		object bool
		n      int
	}
	var stack []level
	var scratch []byte // a string's unquoted bytes
	for {
		kind := dec.PeekKind()
		if kind == 0 {
			_, err := dec.ReadToken() // the error PeekKind saw
			return nil, err
		}
		isName := false
		if len(stack) > 0 && kind != '}' && kind != ']' {
			top := &stack[len(stack)-1]
			isName = top.object && top.n%2 == 0
			switch {
			case top.n > 0 && isName:
				out = append(out, ',')
			case top.n > 0 && !top.object:
				out = append(out, ',')
			case !isName && top.object:
				out = append(out, ':')
			}
			top.n++
		}
		switch kind {
		case '{', '[':
			if len(stack) >= maxDepth {
				return nil, errors.New("nested too deeply")
			}
			if _, err := dec.ReadToken(); err != nil {
				return nil, err
			}
			stack = append(stack, level{object: kind == '{'})
			out = append(out, byte(kind))
			continue
		case '}', ']':
			if _, err := dec.ReadToken(); err != nil {
				return nil, err
			}
			stack = stack[:len(stack)-1]
			out = append(out, byte(kind))
		default:
			v, err := dec.ReadValue()
			if err != nil {
				return nil, err
			}
			if kind != '"' {
				out = append(out, v...) // a number as sent, true, false, null
				break
			}
			scratch, err = jsontext.AppendUnquote(scratch[:0], v)
			if err != nil {
				return nil, err
			}
			str := scratch
			if isName {
				str = lowerFirstBytes(str)
			}
			out = audit.AppendJSONString(out, str, true)
		}
		if len(stack) == 0 {
			break
		}
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return nil, errors.New("trailing data")
	}
	return out, nil
}

const maxDepth = 64

// lowerFirstBytes is lowerFirst on bytes (s is not kept).
func lowerFirstBytes(s []byte) []byte {
	if len(s) > 0 && s[0] < utf8.RuneSelf {
		if 'A' <= s[0] && s[0] <= 'Z' {
			s[0] += 'a' - 'A'
		}
		return s
	}
	return []byte(lowerFirst(string(s)))
}

func lowerFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 || !unicode.IsUpper(r) {
		return s
	}
	return string(unicode.ToLower(r)) + s[n:]
}

// ResponseElements returns an operation's output as CloudTrail records it in
// responseElements: the output's JSON with the first letter of every member
// name lower-cased (TrailARN → trailARN), or nil (null) for an empty output.
func ResponseElements(output any) []byte {
	b, err := json.Marshal(output)
	if err != nil {
		return nil
	}
	out, err := lowerMembers(b)
	if err != nil || string(out) == "{}" || string(out) == "null" {
		return nil
	}
	return out
}
