package awsjson

import (
	"errors"
	"fmt"
	"io"
	"net/http"
)

// ReadBody reads r's body, at most limit bytes. A body over the limit
// (known from Content-Length, or found while reading) is refused with
// RequestEntityTooLargeException, HTTP 413, without reading it all: that
// is the code and status AWS's JSON services use for an oversized request
// (Lambda's Invoke answers it; botocore does not retry it). A body the
// server cannot read (the client went away) gives SerializationException
// with the read error as Cause. A missing body reads as empty. An
// *http.MaxBytesError from a reader the caller installed counts as too
// large too. A body of known length is read into one buffer of that
// length: a request holds no more memory than its Content-Length.
func ReadBody(r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if err := CheckLength(r, limit); err != nil {
		return nil, err
	}
	var b []byte
	var err error
	if r.ContentLength >= 0 {
		b = make([]byte, r.ContentLength)
		if _, err = io.ReadFull(r.Body, b); err == nil {
			// net/http holds a body to its Content-Length; another
			// reader may not.
			var rest []byte
			rest, err = io.ReadAll(io.LimitReader(r.Body, limit+1-r.ContentLength))
			b = append(b, rest...)
		}
	} else {
		b, err = io.ReadAll(io.LimitReader(r.Body, limit+1))
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge(min(limit, mbe.Limit))
		}
		return nil, &Error{Code: CodeSerialization, Status: http.StatusBadRequest,
			Message: "The request body could not be read.", Cause: fmt.Errorf("awsjson: reading body: %w", err)}
	}
	if int64(len(b)) > limit {
		return nil, tooLarge(limit)
	}
	return b, nil
}

// CheckLength refuses, as ReadBody does, a request whose Content-Length
// is over limit, before anything is read.
func CheckLength(r *http.Request, limit int64) error {
	if r.ContentLength > max(limit, 0) {
		return tooLarge(max(limit, 0))
	}
	return nil
}

func tooLarge(limit int64) *Error {
	return &Error{Code: CodeRequestEntityTooLarge, Status: http.StatusRequestEntityTooLarge,
		Message: fmt.Sprintf("Request body is larger than the limit of %d bytes.", limit)}
}
