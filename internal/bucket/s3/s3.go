// Package s3 is the bucket adapter for the S3 API, on AWS or any
// S3-compatible endpoint, through aws-sdk-go-v2's S3 client. Its errors
// are package objects' (ErrNoSuchBucket, ErrNoSuchKey, ErrKeyRefused,
// ErrRequestRefused), so a consumer that declares the bucket interface it
// needs does not link the S3 SDK.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/cairn-audit/cairn/internal/awsclient"
	"github.com/cairn-audit/cairn/internal/bucket/objects"
)

// Options locate an S3 bucket on any S3-compatible endpoint.
type Options struct {
	Endpoint        string // e.g. http://127.0.0.1:5000; "" = AWS
	Region          string
	AccessKeyID     string
	SecretAccessKey string
	PathStyle       bool
}

// Bucket is a bucket on an S3 API.
type Bucket struct {
	name   string
	client *s3api.Client
}

// New returns the bucket name on the endpoint of opts.
func New(name string, opts Options) *Bucket {
	cfg := aws.Config{
		Region:      opts.Region,
		Credentials: credentials.NewStaticCredentialsProvider(opts.AccessKeyID, opts.SecretAccessKey, ""),
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	client := s3api.NewFromConfig(cfg, func(o *s3api.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		o.UsePathStyle = opts.PathStyle
		o.HTTPClient = awsclient.HTTPClient(o.HTTPClient)
		// Checksums only when an operation requires them: S3-compatible
		// stores differ in what they accept.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	return &Bucket{name: name, client: client}
}

// Name returns the bucket's name.
func (b *Bucket) Name() string { return b.name }

// Put writes the object with PutObject. Errors about the key wrap
// objects.ErrKeyRefused, other refusals objects.ErrRequestRefused (classifyPut).
func (b *Bucket) Put(ctx context.Context, key string, body []byte, contentType string, metadata map[string]string) error {
	in := &s3api.PutObjectInput{
		Bucket: aws.String(b.name), Key: aws.String(key), Body: bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))), Metadata: metadata,
	}
	if contentType != "" {
		in.ContentType = aws.String(contentType)
	}
	if _, err := b.client.PutObject(ctx, in); err != nil {
		return fmt.Errorf("bucket %s: put %s: %w", b.name, key, classifyPut(b.wrap(err)))
	}
	return nil
}

// Get reads the object with GetObject.
func (b *Bucket) Get(ctx context.Context, key string) ([]byte, map[string]string, error) {
	out, err := b.client.GetObject(ctx, &s3api.GetObjectInput{Bucket: aws.String(b.name), Key: aws.String(key)})
	if err != nil {
		return nil, nil, fmt.Errorf("bucket %s: get %s: %w", b.name, key, b.wrap(err))
	}
	defer out.Body.Close()
	body, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("bucket %s: get %s: %w", b.name, key, err)
	}
	return body, out.Metadata, nil
}

// Open streams the object with GetObject; the body is read as the caller
// reads it, never buffered whole.
func (b *Bucket) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	out, err := b.client.GetObject(ctx, &s3api.GetObjectInput{Bucket: aws.String(b.name), Key: aws.String(key)})
	if err != nil {
		return nil, fmt.Errorf("bucket %s: get %s: %w", b.name, key, b.wrap(err))
	}
	return out.Body, nil
}

// List pages through ListObjectsV2.
func (b *Bucket) List(ctx context.Context, prefix, startAfter string, limit int) ([]string, error) {
	in := &s3api.ListObjectsV2Input{Bucket: aws.String(b.name), Prefix: aws.String(prefix)}
	if startAfter != "" {
		in.StartAfter = aws.String(startAfter)
	}
	var keys []string
	p := s3api.NewListObjectsV2Paginator(b.client, in)
	for p.HasMorePages() && (limit <= 0 || len(keys) < limit) {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("bucket %s: list %s: %w", b.name, prefix, b.wrap(err))
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	if limit > 0 && len(keys) > limit {
		keys = keys[:limit]
	}
	return keys, nil
}

// Check calls HeadBucket.
func (b *Bucket) Check(ctx context.Context) error {
	if _, err := b.client.HeadBucket(ctx, &s3api.HeadBucketInput{Bucket: aws.String(b.name)}); err != nil {
		return fmt.Errorf("bucket %s: %w", b.name, errors.Join(objects.ErrNoSuchBucket, err))
	}
	return nil
}

// wrap marks S3's "no such" answers with this package's errors.
func (b *Bucket) wrap(err error) error {
	var nsb *types.NoSuchBucket
	var nsk *types.NoSuchKey
	var re interface{ HTTPStatusCode() int }
	var ae smithy.APIError
	switch {
	case errors.As(err, &nsb):
		return errors.Join(objects.ErrNoSuchBucket, err)
	case errors.As(err, &nsk):
		return errors.Join(objects.ErrNoSuchKey, err)
	case errors.As(err, &ae) && ae.ErrorCode() == "NoSuchBucket":
		return errors.Join(objects.ErrNoSuchBucket, err)
	case errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound:
		return errors.Join(objects.ErrNoSuchKey, err)
	}
	return err
}

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

// classifyPut marks an S3 PutObject error: objects.ErrKeyRefused for the key's
// codes, objects.ErrRequestRefused for other 4xx answers that are not about the
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
		return errors.Join(objects.ErrKeyRefused, err)
	case status >= 400 && status < 500 && status != 408 && status != 429 && !bucketCodes[code]:
		return errors.Join(objects.ErrRequestRefused, err)
	}
	return err
}
