package bucket

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"syscall"

	"github.com/aws/smithy-go"
)

// ErrKeyRefused is wrapped by Put errors about the object itself, its key
// above all: writing it again fails again, while other keys of the same
// bucket can be written (a key a local folder cannot hold, S3's
// KeyTooLongError).
var ErrKeyRefused = errors.New("bucket: key refused")

// ErrRequestRefused is wrapped by Put errors where the bucket refused the
// request (an S3 4xx answer other than throttling, timeouts and
// credential or bucket errors) without saying whether the key or the
// bucket is at fault. A caller that wrote other keys in the meantime may
// take it as ErrKeyRefused.
var ErrRequestRefused = errors.New("bucket: request refused")

// CodeError is a failure with the S3 error code that names it.
type CodeError struct {
	Code string
	Err  error
}

func (e *CodeError) Error() string { return e.Code + ": " + e.Err.Error() }
func (e *CodeError) Unwrap() error { return e.Err }

// keyCodes are S3 error codes about an object's key or body.
var keyCodes = map[string]bool{
	"KeyTooLongError": true, "InvalidObjectName": true, "XMinioInvalidObjectName": true, "InvalidURI": true,
	"MetadataTooLarge": true, "EntityTooLarge": true,
}

// bucketCodes are S3 4xx codes about the bucket, the credentials or the
// moment, not the key: writing again later (or elsewhere) may succeed.
var bucketCodes = map[string]bool{
	"AccessDenied": true, "AllAccessDisabled": true, "NoSuchBucket": true, "InvalidAccessKeyId": true,
	"SignatureDoesNotMatch": true, "RequestTimeTooSkewed": true, "ExpiredToken": true, "InvalidToken": true,
	"TokenRefreshRequired": true, "AccountProblem": true, "RequestTimeout": true, "SlowDown": true,
	"Throttling": true, "ThrottlingException": true, "TooManyRequests": true, "RequestLimitExceeded": true,
	"PermanentRedirect": true, "TemporaryRedirect": true, "AuthorizationHeaderMalformed": true,
	"InvalidBucketName": true, "InvalidBucketState": true, "OperationAborted": true, "MissingSecurityHeader": true,
	"IllegalLocationConstraintException": true, "InvalidRegion": true, "NotImplemented": true,
	"ServiceUnavailable": true, "InternalError": true,
}

// classifyPut marks an S3 PutObject error: ErrKeyRefused for the key's
// codes, ErrRequestRefused for other 4xx answers that are not about the
// bucket or the moment; anything else (network, 5xx) is left as it is.
func classifyPut(err error) error {
	var ae smithy.APIError
	var re interface{ HTTPStatusCode() int }
	status := 0
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	code := ""
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	switch {
	case keyCodes[code] || status == 414:
		return errors.Join(ErrKeyRefused, err)
	case status >= 400 && status < 500 && status != 408 && status != 429 && !bucketCodes[code]:
		return errors.Join(ErrRequestRefused, err)
	}
	return err
}

// ErrorCode names err as S3 would, for status fields such as a trail's
// LatestDeliveryError: the code of a *CodeError or of S3's answer,
// NoSuchBucket, AccessDenied for a permission error, ServiceUnavailable
// when the bucket cannot be reached, else InternalError. It never returns
// raw error text.
func ErrorCode(err error) string {
	var ce *CodeError
	var ae smithy.APIError
	var ne net.Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &ce) && safeCode(ce.Code):
		return ce.Code
	case errors.As(err, &ae) && safeCode(ae.ErrorCode()):
		return ae.ErrorCode()
	case errors.Is(err, ErrNoSuchBucket):
		return "NoSuchBucket"
	case errors.Is(err, fs.ErrPermission):
		return "AccessDenied"
	case errors.Is(err, syscall.ENOSPC):
		return "InsufficientStorage"
	case errors.As(err, &ne), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, context.DeadlineExceeded):
		return "ServiceUnavailable"
	}
	return "InternalError"
}

// safeCode reports whether c looks like an S3 error code: 1 to 64
// letters, digits and dots.
func safeCode(c string) bool {
	if c == "" || len(c) > 64 {
		return false
	}
	for i := 0; i < len(c); i++ {
		if b := c[i]; !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '.') {
			return false
		}
	}
	return true
}
