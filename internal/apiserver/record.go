package apiserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"unicode"
	"unicode/utf8"
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
// not reformatted).
func lowerMembers(in []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(in))
	dec.UseNumber()
	var out bytes.Buffer
	if err := copyValue(dec, &out, 0); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data")
	}
	return out.Bytes(), nil
}

const maxDepth = 64

func copyValue(dec *json.Decoder, out *bytes.Buffer, depth int) error {
	if depth > maxDepth {
		return errors.New("nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			out.WriteByte('{')
			for first := true; dec.More(); first = false {
				if !first {
					out.WriteByte(',')
				}
				kt, err := dec.Token()
				if err != nil {
					return err
				}
				k, _ := kt.(string)
				writeJSON(out, lowerFirst(k))
				out.WriteByte(':')
				if err := copyValue(dec, out, depth+1); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil {
				return err
			}
			out.WriteByte('}')
		case '[':
			out.WriteByte('[')
			for first := true; dec.More(); first = false {
				if !first {
					out.WriteByte(',')
				}
				if err := copyValue(dec, out, depth+1); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil {
				return err
			}
			out.WriteByte(']')
		}
	case json.Number:
		out.WriteString(v.String())
	default:
		writeJSON(out, v)
	}
	return nil
}

func writeJSON(out *bytes.Buffer, v any) {
	b, _ := json.Marshal(v)
	out.Write(b)
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
