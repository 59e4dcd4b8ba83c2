// Package awsjson is the server side of the AWS JSON 1.1 protocol as
// CloudTrail speaks it: X-Amz-Target routing, bounded request bodies, strict
// decoding with Coral-style SerializationException messages, epoch-second
// timestamps, and the {"__type","message"} error envelope that botocore and
// the other SDKs parse. Error codes map to HTTP statuses in one place,
// StatusFor.
package awsjson

import (
	"net/http"
	"strings"
)

// ContentType is the media type of AWS JSON 1.1 bodies.
const ContentType = "application/x-amz-json-1.1"

// Error is an AWS error as the client receives it. Code is the bare wire
// code (TrailNotFoundException, no namespace prefix); Message is safe to show
// the client. A zero Status means StatusFor(Code). Cause, if set, is for the
// log only: it is never written to the client.
type Error struct {
	Code    string
	Message string
	Status  int
	Cause   error
}

// Error returns "Code: Message", followed by the cause in parentheses when
// there is one.
func (e *Error) Error() string {
	s := e.Code + ": " + e.Message
	if e.Cause != nil {
		s += " (" + e.Cause.Error() + ")"
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// HTTPStatus returns e.Status, or StatusFor(e.Code) when it is zero.
func (e *Error) HTTPStatus() int {
	if e.Status != 0 {
		return e.Status
	}
	return StatusFor(e.Code)
}

// The error codes this package itself answers with.
const (
	// CodeSerialization is answered for bodies that are not valid JSON or
	// whose members have the wrong JSON type.
	CodeSerialization = "SerializationException"
	// CodeRequestEntityTooLarge is answered for bodies over ReadBody's limit.
	CodeRequestEntityTooLarge = "RequestEntityTooLargeException"
	// CodeInternalFailure is answered when a response cannot be encoded.
	CodeInternalFailure = "InternalFailure"
)

// StatusFor returns the HTTP status AWS answers an error code with. It is
// the one table from code to status:
//
//   - 400 for every error modeled by CloudTrail and CloudTrail Data
//     (TrailNotFoundException, InvalidMaxResultsException, ...), including
//     the modeled AccessDeniedException: Coral services such as CloudTrail
//     answer AccessDeniedException with 400 (newer Smithy services use 403;
//     CloudTrail does not);
//   - 400 for ThrottlingException (botocore retries it by code),
//     SerializationException, UnknownOperationException,
//     IncompleteSignatureException, RequestExpired, ValidationException and
//     every code it does not know;
//   - 403 for MissingAuthenticationToken(Exception),
//     UnrecognizedClientException, InvalidSignatureException,
//     InvalidClientTokenId and OptInRequired;
//   - 413 for RequestEntityTooLargeException;
//   - 500 for InternalFailure; 503 for ServiceUnavailable(Exception).
//
// A "namespace#" prefix or ":detail" suffix on code is ignored, as botocore
// ignores it.
func StatusFor(code string) int {
	if i := strings.LastIndexByte(code, '#'); i >= 0 {
		code = code[i+1:]
	}
	if i := strings.IndexByte(code, ':'); i >= 0 {
		code = code[:i]
	}
	// The values follow AWS's "Common Errors" pages for Coral (AWS JSON
	// 1.0/1.1) services such as CloudTrail; the signature errors CloudTrail's
	// front end answers for a wrong or unknown key are 403 too.
	switch code {
	case "MissingAuthenticationToken", "MissingAuthenticationTokenException",
		"UnrecognizedClientException", "InvalidSignatureException",
		"InvalidClientTokenId", "OptInRequired":
		return http.StatusForbidden
	case CodeRequestEntityTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeInternalFailure, "InternalFailureException", "InternalServerError":
		return http.StatusInternalServerError
	case "ServiceUnavailable", "ServiceUnavailableException":
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}
