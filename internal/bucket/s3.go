package bucket

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/cairn-audit/cairn/internal/awsclient"
)

// S3Options locate an S3 bucket on any S3-compatible endpoint.
type S3Options struct {
	Endpoint        string // e.g. http://127.0.0.1:5000; "" = AWS
	Region          string
	AccessKeyID     string
	SecretAccessKey string
	PathStyle       bool
}

// S3 is a bucket on an S3 API.
type S3 struct {
	name   string
	client *s3.Client
}

// NewS3 returns the bucket name on the endpoint of opts.
func NewS3(name string, opts S3Options) *S3 {
	cfg := aws.Config{
		Region:      opts.Region,
		Credentials: credentials.NewStaticCredentialsProvider(opts.AccessKeyID, opts.SecretAccessKey, ""),
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
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
	return &S3{name: name, client: client}
}

// Name returns the bucket's name.
func (b *S3) Name() string { return b.name }

// Put writes the object with PutObject. Errors about the key wrap
// ErrKeyRefused, other refusals ErrRequestRefused (classifyPut).
func (b *S3) Put(ctx context.Context, key string, body []byte, contentType string, metadata map[string]string) error {
	in := &s3.PutObjectInput{
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
func (b *S3) Get(ctx context.Context, key string) ([]byte, map[string]string, error) {
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b.name), Key: aws.String(key)})
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
func (b *S3) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b.name), Key: aws.String(key)})
	if err != nil {
		return nil, fmt.Errorf("bucket %s: get %s: %w", b.name, key, b.wrap(err))
	}
	return out.Body, nil
}

// List pages through ListObjectsV2.
func (b *S3) List(ctx context.Context, prefix, startAfter string, limit int) ([]string, error) {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(b.name), Prefix: aws.String(prefix)}
	if startAfter != "" {
		in.StartAfter = aws.String(startAfter)
	}
	var keys []string
	p := s3.NewListObjectsV2Paginator(b.client, in)
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
func (b *S3) Check(ctx context.Context) error {
	if _, err := b.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(b.name)}); err != nil {
		return fmt.Errorf("bucket %s: %w", b.name, errors.Join(ErrNoSuchBucket, err))
	}
	return nil
}

// wrap marks S3's "no such" answers with this package's errors.
func (b *S3) wrap(err error) error {
	var nsb *types.NoSuchBucket
	var nsk *types.NoSuchKey
	var re interface{ HTTPStatusCode() int }
	var ae smithy.APIError
	switch {
	case errors.As(err, &nsb):
		return errors.Join(ErrNoSuchBucket, err)
	case errors.As(err, &nsk):
		return errors.Join(ErrNoSuchKey, err)
	case errors.As(err, &ae) && ae.ErrorCode() == "NoSuchBucket":
		return errors.Join(ErrNoSuchBucket, err)
	case errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound:
		return errors.Join(ErrNoSuchKey, err)
	}
	return err
}

func marshalMeta(m map[string]string) ([]byte, error) { return json.Marshal(m) }

func unmarshalMeta(b []byte) (map[string]string, error) {
	var m map[string]string
	err := json.Unmarshal(b, &m)
	return m, err
}
