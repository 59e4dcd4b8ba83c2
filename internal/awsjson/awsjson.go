// Package awsjson is the server side of the AWS JSON 1.1 protocol: target
// routing, bounded bodies, strict decoding, timestamps, and the
// {"__type","message"} error envelope that botocore and the other SDKs parse.
package awsjson

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ContentType is the media type of AWS JSON 1.1 bodies.
const ContentType = "application/x-amz-json-1.1"

// Error is an AWS error as the client receives it. Code is the full wire
// code (TrailNotFoundException); Message is safe to show the client.
type Error struct {
	Code    string
	Message string
	Status  int
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// statuses maps the error codes whose HTTP status is not 400.
var statuses = map[string]int{
	"MissingAuthenticationTokenException": http.StatusForbidden,
	"UnrecognizedClientException":         http.StatusForbidden,
	"InvalidSignatureException":           http.StatusForbidden,
	"AccessDeniedException":               http.StatusForbidden,
	"RequestEntityTooLargeException":      http.StatusRequestEntityTooLarge,
	"InternalFailure":                     http.StatusInternalServerError,
	"ServiceUnavailableException":         http.StatusServiceUnavailable,
}

// StatusFor returns the HTTP status of an error code: 400 for every modeled
// CloudTrail error, ThrottlingException, SerializationException and
// IncompleteSignatureException, and the exceptions above otherwise.
func StatusFor(code string) int {
	if s, ok := statuses[code]; ok {
		return s
	}
	return http.StatusBadRequest
}

// ParseTarget splits an X-Amz-Target header value into its service prefix
// and operation: "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents"
// (as botocore sends it) and "CloudTrail_20131101.LookupEvents" both give
// ("CloudTrail_20131101", "LookupEvents").
func ParseTarget(h string) (prefix, op string, ok bool) {
	i := strings.LastIndexByte(h, '.')
	if i <= 0 || i == len(h)-1 {
		return "", "", false
	}
	op = h[i+1:]
	rest := h[:i]
	if j := strings.LastIndexByte(rest, '.'); j >= 0 {
		rest = rest[j+1:]
	}
	if rest == "" || !validName(op) || !validName(rest) {
		return "", "", false
	}
	return rest, op, true
}

func validName(s string) bool {
	if len(s) > 256 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ReadBody reads the request body, at most limit bytes. A larger body is
// refused with RequestEntityTooLargeException (HTTP 413) without reading
// it all.
func ReadBody(r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, &Error{Code: "SerializationException", Message: "Could not read the request body.", Status: http.StatusBadRequest}
	}
	if int64(len(b)) > limit {
		return nil, tooLarge(limit)
	}
	return b, nil
}

func tooLarge(limit int64) *Error {
	return &Error{Code: "RequestEntityTooLargeException", Status: http.StatusRequestEntityTooLarge,
		Message: fmt.Sprintf("Request body is larger than %d bytes.", limit)}
}

// maxNesting bounds how deeply a request body may nest.
const maxNesting = 32

// Decode decodes a request body into v. An empty body means {}. The body
// must be one JSON object; malformed JSON, other top-level values, trailing
// data, too deep nesting and members of the wrong type are refused with
// SerializationException naming the member. Unknown members are ignored,
// as AWS does.
func Decode(body []byte, v any) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		body = []byte("{}")
	}
	if body[0] != '{' {
		return serialization("Start of structure or map expected: the request body must be a JSON object.")
	}
	if depth(body) > maxNesting {
		return serialization("The request body is nested too deeply.")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			field := te.Field
			if field == "" {
				field = "the request"
			}
			return serialization(fmt.Sprintf("Unexpected %s for member %s; expected %s.", te.Value, field, jsonKind(te.Type.Kind().String())))
		}
		var ve *timestampError
		if errors.As(err, &ve) {
			return serialization(ve.Error())
		}
		return serialization("The request body is not valid JSON.")
	}
	if dec.More() {
		return serialization("Unexpected data after the JSON object.")
	}
	return nil
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "int", "int32", "int64", "float64":
		return "a number"
	case "bool":
		return "a boolean"
	case "slice":
		return "a list"
	case "struct", "map", "ptr":
		return "a structure"
	}
	return k
}

func serialization(msg string) *Error {
	return &Error{Code: "SerializationException", Message: msg, Status: http.StatusBadRequest}
}

// depth returns the deepest nesting of objects and arrays in b, ignoring
// brackets inside strings.
func depth(b []byte) int {
	d, maxD, inStr, esc := 0, 0, false, false
	for _, c := range b {
		switch {
		case esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case c == '"':
			inStr = !inStr
		case inStr:
		case c == '{' || c == '[':
			d++
			maxD = max(maxD, d)
		case c == '}' || c == ']':
			d--
		}
	}
	return maxD
}

// Timestamp is an AWS JSON timestamp: epoch seconds on the wire, a JSON
// number that may have a fraction. Decoding also accepts ISO-8601 strings.
type Timestamp struct{ t time.Time }

// NewTimestamp returns t as a Timestamp.
func NewTimestamp(t time.Time) Timestamp { return Timestamp{t} }

// Time returns the timestamp as a time.Time in UTC.
func (ts Timestamp) Time() time.Time { return ts.t.UTC() }

type timestampError struct{ msg string }

func (e *timestampError) Error() string { return e.msg }

// UnmarshalJSON accepts a number of epoch seconds or an ISO-8601 string.
func (ts *Timestamp) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return &timestampError{"Invalid timestamp."}
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return &timestampError{fmt.Sprintf("Invalid timestamp %q: want epoch seconds or ISO-8601.", clip(s))}
		}
		ts.t = t
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	// Years 1 to 9999, the range of the time formats.
	if err != nil || math.IsNaN(f) || f < -62135596800 || f > 253402300799 {
		return &timestampError{"Invalid timestamp: want epoch seconds or ISO-8601."}
	}
	sec, frac := math.Modf(f)
	ts.t = time.Unix(int64(sec), int64(math.Round(frac*1e3))*int64(time.Millisecond))
	return nil
}

// MarshalJSON writes epoch seconds with up to three decimals.
func (ts Timestamp) MarshalJSON() ([]byte, error) {
	ms := ts.t.UnixMilli()
	if ms%1000 == 0 {
		return strconv.AppendInt(nil, ms/1000, 10), nil
	}
	return strconv.AppendFloat(nil, float64(ms)/1000, 'f', -1, 64), nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// WriteJSON writes a successful response.
func WriteJSON(w http.ResponseWriter, requestID string, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		WriteError(w, requestID, &Error{Code: "InternalFailure", Message: "The response could not be encoded.", Status: http.StatusInternalServerError})
		return
	}
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("x-amzn-RequestId", requestID)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// WriteError writes e as {"__type":Code,"message":Message} with the
// X-Amzn-ErrorType header. A zero Status is taken from StatusFor.
func WriteError(w http.ResponseWriter, requestID string, e *Error) {
	status := e.Status
	if status == 0 {
		status = StatusFor(e.Code)
	}
	b, _ := json.Marshal(struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}{e.Code, e.Message})
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("x-amzn-RequestId", requestID)
	h.Set("X-Amzn-ErrorType", e.Code)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// NewRequestID returns a random UUID (version 4), as AWS request IDs are.
func NewRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
