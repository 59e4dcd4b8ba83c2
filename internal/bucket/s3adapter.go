package bucket

import "github.com/cairn-audit/cairn/internal/bucket/s3"

// S3Options locate an S3 bucket (s3.Options).
type S3Options = s3.Options

// S3 is a bucket on an S3 API (s3.Bucket).
type S3 = s3.Bucket

// NewS3 returns the bucket name on the endpoint of opts (s3.New).
func NewS3(name string, opts S3Options) *S3 { return s3.New(name, opts) }
