package trail

import (
	"context"
	"errors"
	"fmt"

	"github.com/cairn-audit/cairn/internal/bucket"
	"github.com/cairn-audit/cairn/internal/trail/chain"
)

// BucketObjects reads through bucket.Bucket values found by name.
type BucketObjects func(name string) (bucket.Bucket, bool)

// Get reads an object; a missing object or bucket is chain.ErrNotFound (the CLI
// reports both as "not found").
func (f BucketObjects) Get(ctx context.Context, name, key string) ([]byte, map[string]string, error) {
	b, ok := f(name)
	if !ok {
		return nil, nil, fmt.Errorf("bucket %s: %w", name, chain.ErrNotFound)
	}
	body, meta, err := b.Get(ctx, key)
	if errors.Is(err, bucket.ErrNoSuchKey) {
		return nil, nil, fmt.Errorf("%w: %w", chain.ErrNotFound, err)
	}
	return body, meta, err
}

// List lists every key under prefix after marker.
func (f BucketObjects) List(ctx context.Context, name, prefix, marker string) ([]string, error) {
	b, ok := f(name)
	if !ok {
		return nil, fmt.Errorf("bucket %s: %w", name, bucket.ErrNoSuchBucket)
	}
	return b.List(ctx, prefix, marker, 0)
}
