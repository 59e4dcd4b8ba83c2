package bucket

import (
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

// ErrorCode names err as S3 would, never with raw error text
// (objects.ErrorCode).
func ErrorCode(err error) string { return objects.ErrorCode(err) }
