package awsjson

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
)

// encode marshals v as AWS does: no HTML escaping, no trailing newline.
func encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	if err := encodeTo(&buf, v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// encodeTo writes v's JSON as encode does to buf.
func encodeTo(buf *bytes.Buffer, v any) error {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	buf.Truncate(buf.Len() - 1) // Encode's newline
	return nil
}

// bodies holds response buffers (*[]byte) for reuse: a LookupEvents
// page is about 100 KB, and a new buffer each response, grown by
// doubling, was most of the server's allocations under lookups (issue 19).
var bodies = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledBody bounds the buffers kept for reuse.
const maxPooledBody = 1 << 20

// WriteJSON writes a successful response: v as JSON with Content-Type
// application/x-amz-json-1.1, x-amzn-RequestId and Content-Length. A nil v
// is written as {}; a v that is a JSONAppender appends itself. If v cannot
// be encoded, an InternalFailure error is written instead. Write errors (a
// gone client) are not reported: there is no one left to answer.
func WriteJSON(w http.ResponseWriter, requestID string, status int, v any) {
	p := bodies.Get().(*[]byte)
	b := (*p)[:0]
	switch a := v.(type) {
	case nil:
		b = append(b, "{}"...)
	case JSONAppender:
		b = a.AppendJSON(b)
	default:
		buf := bytes.NewBuffer(b)
		if err := encodeTo(buf, v); err != nil {
			WriteError(w, requestID, &Error{Code: CodeInternalFailure, Status: http.StatusInternalServerError,
				Message: "The request processing has failed because of an unknown error, exception or failure.", Cause: err})
			return
		}
		b = buf.Bytes()
	}
	write(w, requestID, status, b)
	if cap(b) <= maxPooledBody {
		*p = b[:0]
		bodies.Put(p)
	}
}

// WriteError writes e as {"__type":"<Code>","message":"<Message>"} with the
// headers Content-Type, x-amzn-RequestId and X-Amzn-ErrorType: <Code>, and
// the status e.HTTPStatus(). e.Cause is not written.
func WriteError(w http.ResponseWriter, requestID string, e *Error) {
	if e == nil {
		e = &Error{Code: CodeInternalFailure, Message: "The request processing has failed because of an unknown error, exception or failure."}
	}
	b, err := encode(struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}{e.Code, e.Message})
	if err != nil { // unreachable: two strings always encode
		b = []byte(`{"__type":"InternalFailure","message":""}`)
	}
	w.Header().Set("X-Amzn-ErrorType", e.Code)
	write(w, requestID, e.HTTPStatus(), b)
}

func write(w http.ResponseWriter, requestID string, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("x-amzn-RequestId", requestID)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
