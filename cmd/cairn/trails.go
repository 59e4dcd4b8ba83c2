package main

import (
	"context"
	"io"
	"path/filepath"

	"github.com/cairn-audit/cairn/internal/bucket/local"
	"github.com/cairn-audit/cairn/internal/bucket/s3"
	"github.com/cairn-audit/cairn/internal/config"
	"github.com/cairn-audit/cairn/internal/trail"
)

// defaultBucket is the bucket every cairn has without configuration: a
// local folder in the data dir, with the layout of an S3 bucket.
const defaultBucket = "cairn-logs"

// objectBucket is what cairn's bucket adapters (bucket/local, bucket/s3)
// have, and its consumers (trail delivery and digests, Lake's imports)
// need.
type objectBucket interface {
	trail.Bucket
	Open(ctx context.Context, key string) (io.ReadCloser, error)
}

// buckets are the configured buckets by name, plus the default one.
type buckets map[string]objectBucket

func (b buckets) get(name string) (objectBucket, bool) {
	x, ok := b[name]
	return x, ok
}

// trail is get for the trail feature, which declares its own bucket port.
func (b buckets) trail(name string) (trail.Bucket, bool) {
	x, ok := b[name]
	if !ok {
		return nil, false
	}
	return x, true
}

// openBuckets opens the buckets of cfg. Local folders are created.
func openBuckets(cfg *config.Config, dataDir string) (buckets, error) {
	out := buckets{}
	for _, c := range cfg.Buckets {
		if c.S3 != nil {
			out[c.Name] = s3.New(c.Name, s3.Options{Endpoint: c.S3.Endpoint, Region: c.S3.Region,
				AccessKeyID: c.S3.AccessKeyID, SecretAccessKey: c.S3.SecretAccessKey, PathStyle: c.S3.PathStyle})
			continue
		}
		l, err := local.New(c.Name, c.LocalDir)
		if err != nil {
			return nil, err
		}
		out[c.Name] = l
	}
	if out[defaultBucket] == nil {
		l, err := local.New(defaultBucket, filepath.Join(dataDir, "buckets", defaultBucket))
		if err != nil {
			return nil, err
		}
		out[defaultBucket] = l
	}
	return out, nil
}
