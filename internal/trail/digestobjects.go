package trail

import (
	"context"
	"errors"
	"fmt"

	"github.com/cairn-audit/cairn/internal/bucket/objects"
	"github.com/cairn-audit/cairn/internal/trail/chain"
)

// BucketObjects reads through Bucket values found by name.
type BucketObjects func(name string) (Bucket, bool)

// Get reads an object; a missing object or bucket is chain.ErrNotFound (the CLI
// reports both as "not found").
func (f BucketObjects) Get(ctx context.Context, name, key string) ([]byte, map[string]string, error) {
	b, ok := f(name)
	if !ok {
		return nil, nil, fmt.Errorf("bucket %s: %w", name, chain.ErrNotFound)
	}
	body, meta, err := b.Get(ctx, key)
	if errors.Is(err, objects.ErrNoSuchKey) {
		return nil, nil, fmt.Errorf("%w: %w", chain.ErrNotFound, err)
	}
	return body, meta, err
}

// List lists every key under prefix after marker.
func (f BucketObjects) List(ctx context.Context, name, prefix, marker string) ([]string, error) {
	b, ok := f(name)
	if !ok {
		return nil, fmt.Errorf("bucket %s: %w", name, objects.ErrNoSuchBucket)
	}
	return b.List(ctx, prefix, marker, 0)
}

// Bucket is what trails need of a bucket (internal/bucket's S3 and local
// folder adapters). Its errors are those of package objects. Safe for
// concurrent use.
type Bucket interface {
	// Put writes an object with its metadata (x-amz-meta-* on S3).
	// Errors about the object itself wrap objects.ErrKeyRefused,
	// refusals of the request objects.ErrRequestRefused.
	Put(ctx context.Context, key string, body []byte, contentType string, metadata map[string]string) error
	// Get reads an object and its metadata (objects.ErrNoSuchKey when
	// absent).
	Get(ctx context.Context, key string) (body []byte, metadata map[string]string, err error)
	// List returns up to limit keys (0: all) under prefix in lexical
	// order, after startAfter ("" = from the first).
	List(ctx context.Context, prefix, startAfter string, limit int) ([]string, error)
	// Check reports objects.ErrNoSuchBucket (wrapped) when the bucket
	// does not exist or cannot be reached.
	Check(ctx context.Context) error
}
