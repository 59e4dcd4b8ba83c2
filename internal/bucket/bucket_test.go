package bucket

import (
	"context"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/cairn-audit/cairn/internal/mototest"
)

// conformance checks a Bucket: objects and metadata round-trip, listing
// is lexical with prefix and startAfter, missing keys are ErrNoSuchKey.
func conformance(t *testing.T, b Bucket) {
	ctx := context.Background()
	if err := b.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	keys := []string{"p/AWSLogs/1/CloudTrail/b.json.gz", "p/AWSLogs/1/CloudTrail/a.json.gz", "p/AWSLogs/1/CloudTrail-Digest/c.json.gz", "q/x"}
	for i, k := range keys {
		var meta map[string]string
		if i == 2 {
			meta = map[string]string{"signature": "abc", "signature-algorithm": "SHA256withRSA"}
		}
		if err := b.Put(ctx, k, []byte("body "+k), "application/json", meta); err != nil {
			t.Fatalf("Put %s: %v", k, err)
		}
	}
	body, meta, err := b.Get(ctx, keys[2])
	if err != nil || string(body) != "body "+keys[2] || meta["signature"] != "abc" || meta["signature-algorithm"] != "SHA256withRSA" {
		t.Errorf("Get = %q %v %v", body, meta, err)
	}
	if _, meta, err := b.Get(ctx, keys[0]); err != nil || len(meta) != 0 {
		t.Errorf("Get without metadata = %v %v", meta, err)
	}
	if _, _, err := b.Get(ctx, "p/none"); !errors.Is(err, ErrNoSuchKey) {
		t.Errorf("Get(missing) = %v; want ErrNoSuchKey", err)
	}
	rc, err := b.Open(ctx, keys[1])
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if body, err := io.ReadAll(rc); err != nil || string(body) != "body "+keys[1] {
		t.Errorf("Open read %q, %v", body, err)
	}
	rc.Close()
	if _, err := b.Open(ctx, "p/none"); !errors.Is(err, ErrNoSuchKey) {
		t.Errorf("Open(missing) = %v; want ErrNoSuchKey", err)
	}
	for _, c := range []struct {
		prefix, after string
		limit         int
		want          []string
	}{
		{"p/AWSLogs/1/CloudTrail/", "", 0, []string{keys[1], keys[0]}},
		// Byte order: "CloudTrail-Digest/" before "CloudTrail/" ('-' < '/'), as S3 lists.
		{"p/", "", 2, []string{keys[2], keys[1]}},
		{"p/", keys[1], 10, []string{keys[0]}},
		{"", "", 0, []string{keys[2], keys[1], keys[0], keys[3]}},
		{"z/", "", 0, nil},
	} {
		got, err := b.List(ctx, c.prefix, c.after, c.limit)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("List(%q, %q, %d) = %v, %v; want %v", c.prefix, c.after, c.limit, got, err, c.want)
		}
	}
}

func TestLocal(t *testing.T) {
	b, err := NewLocal("logs", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	conformance(t, b)
	for _, k := range []string{"", "/abs", "a/../b", "a//b", "a\\b", "x.metadata.json"} {
		if err := b.Put(context.Background(), k, nil, "", nil); err == nil {
			t.Errorf("Put(%q) accepted", k)
		}
	}
	gone := &Local{name: "gone", dir: t.TempDir() + "/missing"}
	if err := gone.Check(context.Background()); !errors.Is(err, ErrNoSuchBucket) {
		t.Errorf("Check(missing folder) = %v", err)
	}
}

func TestS3(t *testing.T) {
	endpoint := mototest.Start(t)
	opts := S3Options{Endpoint: endpoint, Region: "us-east-1", AccessKeyID: "x", SecretAccessKey: "y", PathStyle: true}
	missing := NewS3("missing", opts)
	if err := missing.Check(context.Background()); !errors.Is(err, ErrNoSuchBucket) {
		t.Errorf("Check(missing bucket) = %v", err)
	}
	c := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("x", "y", "")})
	if _, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String("logs")}); err != nil {
		t.Fatal(err)
	}
	conformance(t, NewS3("logs", opts))
	// Metadata are x-amz-meta-* headers, as digests need.
	h, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("logs"), Key: aws.String("p/AWSLogs/1/CloudTrail-Digest/c.json.gz")})
	if err != nil || h.Metadata["signature"] != "abc" {
		t.Errorf("HeadObject metadata = %v, %v", h.Metadata, err)
	}
}
