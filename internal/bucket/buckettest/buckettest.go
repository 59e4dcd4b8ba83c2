// Package buckettest is the conformance suite every bucket adapter
// (bucket/local, bucket/s3) runs.
package buckettest

import (
	"context"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/cairn-audit/cairn/internal/bucket/objects"
)

// Bucket is what the suite exercises: the methods every adapter has.
type Bucket interface {
	Put(ctx context.Context, key string, body []byte, contentType string, metadata map[string]string) error
	Get(ctx context.Context, key string) (body []byte, metadata map[string]string, err error)
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	List(ctx context.Context, prefix, startAfter string, limit int) ([]string, error)
	Check(ctx context.Context) error
}

// Conformance checks a bucket adapter: objects and metadata round-trip, listing
// is lexical with prefix and startAfter, missing keys are objects.ErrNoSuchKey.
func Conformance(t *testing.T, b Bucket) {
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
	if _, _, err := b.Get(ctx, "p/none"); !errors.Is(err, objects.ErrNoSuchKey) {
		t.Errorf("Get(missing) = %v; want objects.ErrNoSuchKey", err)
	}
	rc, err := b.Open(ctx, keys[1])
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if body, err := io.ReadAll(rc); err != nil || string(body) != "body "+keys[1] {
		t.Errorf("Open read %q, %v", body, err)
	}
	rc.Close()
	if _, err := b.Open(ctx, "p/none"); !errors.Is(err, objects.ErrNoSuchKey) {
		t.Errorf("Open(missing) = %v; want objects.ErrNoSuchKey", err)
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
