package bucket

import (
	"errors"

	"github.com/aws/smithy-go"

	"github.com/cairn-audit/cairn/internal/bucket/objects"
)

// The errors of buckets, shared with their consumers through package
// objects (the same values: errors.Is holds across both names).
var (
	ErrKeyRefused     = objects.ErrKeyRefused
	ErrRequestRefused = objects.ErrRequestRefused
)

// CodeError is a failure with the S3 error code that names it.
type CodeError = objects.CodeError

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

// ErrorCode names err as S3 would, never with raw error text
// (objects.ErrorCode).
func ErrorCode(err error) string { return objects.ErrorCode(err) }
