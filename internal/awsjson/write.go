package awsjson

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
)

// encode marshals v as AWS does: no HTML escaping, no trailing newline.
func encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// WriteJSON writes a successful response: v as JSON with Content-Type
// application/x-amz-json-1.1, x-amzn-RequestId and Content-Length. A nil v
// is written as {}. If v cannot be encoded, an InternalFailure error is
// written instead. Write errors (a gone client) are not reported: there is
// no one left to answer.
func WriteJSON(w http.ResponseWriter, requestID string, status int, v any) {
	b := []byte("{}")
	if v != nil {
		var err error
		if b, err = encode(v); err != nil {
			WriteError(w, requestID, &Error{Code: CodeInternalFailure, Status: http.StatusInternalServerError,
				Message: "The request processing has failed because of an unknown error, exception or failure.", Cause: err})
			return
		}
	}
	write(w, requestID, status, b)
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
