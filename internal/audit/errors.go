package audit

import (
	"errors"
	"fmt"
)

// Error is a failure the client caused or must know about. Code is the
// CloudTrail error code without its "Exception" suffix (TrailNotFound,
// InvalidTimeRange); Message is safe to show the client. Err, when set, is
// the underlying cause, for the log only.
type Error struct {
	Code    string
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the Code of the *Error in err's chain, or "" if there is none.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// Error codes the domain itself raises. The wire layer appends "Exception"
// and maps each to an HTTP status.
const (
	CodeInvalidLookupAttributes = "InvalidLookupAttributes"
	CodeInvalidTimeRange        = "InvalidTimeRange"
	CodeInvalidMaxResults       = "InvalidMaxResults"
	CodeInvalidNextToken        = "InvalidNextToken"
	CodeInvalidEventCategory    = "InvalidEventCategory"
	CodeInvalidParameter        = "InvalidParameter"
	CodeThrottling              = "Throttling"
	// CodeServiceUnavailable answers writes cairn cannot take for now
	// (its disk is full): HTTP 503, retried by the SDKs.
	CodeServiceUnavailable = "ServiceUnavailable"
)

// ErrInvalidRecord is wrapped by Extract errors: the bytes are not a record
// cairn can index.
var ErrInvalidRecord = errors.New("invalid record")
