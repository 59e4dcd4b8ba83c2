package s3

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cairn-audit/cairn/internal/bucket/buckettest"
	"github.com/cairn-audit/cairn/internal/bucket/objects"
	"github.com/cairn-audit/cairn/internal/mototest"
)

func TestS3(t *testing.T) {
	endpoint := mototest.Start(t)
	opts := Options{Endpoint: endpoint, Region: "us-east-1", AccessKeyID: "x", SecretAccessKey: "y", PathStyle: true}
	missing := New("missing", opts)
	if err := missing.Check(context.Background()); !errors.Is(err, objects.ErrNoSuchBucket) {
		t.Errorf("Check(missing bucket) = %v", err)
	}
	c := s3api.New(s3api.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("x", "y", "")})
	if _, err := c.CreateBucket(context.Background(), &s3api.CreateBucketInput{Bucket: aws.String("logs")}); err != nil {
		t.Fatal(err)
	}
	buckettest.Conformance(t, New("logs", opts))
	// Metadata are x-amz-meta-* headers, as digests need.
	h, err := c.HeadObject(context.Background(), &s3api.HeadObjectInput{Bucket: aws.String("logs"), Key: aws.String("p/AWSLogs/1/CloudTrail-Digest/c.json.gz")})
	if err != nil || h.Metadata["signature"] != "abc" {
		t.Errorf("HeadObject metadata = %v, %v", h.Metadata, err)
	}
}
