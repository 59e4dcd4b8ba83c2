// Package objects is what every bucket adapter (bucket/s3, bucket/local: a
// local folder) and every consumer of buckets (trail delivery, digests,
// validation) share: the errors a bucket answers, the S3-style error code
// that names a failure without its raw text, and the keys a bucket holds.
// Consumers declare the bucket interface they need; this package keeps
// them apart from the adapters' SDKs. Standard library only.
package objects

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"strings"
	"syscall"
)

// ErrNoSuchBucket reports a bucket that does not exist or cannot be reached.
var ErrNoSuchBucket = errors.New("bucket: no such bucket")

// ErrNoSuchKey reports an object that does not exist.
var ErrNoSuchKey = errors.New("bucket: no such key")

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

// coder is an error that names its S3 error code (the S3 SDK's
// smithy.APIError).
type coder interface{ ErrorCode() string }

// ErrorCode names err as S3 would, for status fields such as a trail's
// LatestDeliveryError: the code of a *CodeError or of S3's answer,
// NoSuchBucket, AccessDenied for a permission error, ServiceUnavailable
// when the bucket cannot be reached, else InternalError. It never returns
// raw error text.
func ErrorCode(err error) string {
	var ce *CodeError
	var ae coder
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

// ValidKey reports whether key is an S3 key a local folder can hold: not
// empty, at most 1,024 bytes, no empty, "." or ".." segment, no NUL or
// backslash, not starting with "/".
func ValidKey(key string) bool {
	if key == "" || len(key) > 1024 || strings.ContainsAny(key, "\x00\\") || strings.HasPrefix(key, "/") {
		return false
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}
