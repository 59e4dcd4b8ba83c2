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

// openBuckets opens the buckets of cfg and the data dir's cairn-logs.
// Local folders are created.
func openBuckets(cfg *config.Config, dataDir string) (buckets, error) {
	return bucketsOf(cfg, dataDir, true)
}

// bucketsOf opens the buckets of cfg and the data dir's cairn-logs; with
// create false, a local bucket whose folder does not exist is left out
// rather than created (validate-logs reads, it makes nothing).
func bucketsOf(cfg *config.Config, dataDir string, create bool) (buckets, error) {
	out := buckets{}
	open := func(name, dir string) error {
		if !create && !dirExists(dir) {
			return nil
		}
		l, err := local.New(name, dir)
		if err == nil {
			out[name] = l
		}
		return err
	}
	for _, c := range cfg.Buckets {
		if c.S3 != nil {
			out[c.Name] = s3.New(c.Name, s3.Options{Endpoint: c.S3.Endpoint, Region: c.S3.Region,
				AccessKeyID: c.S3.AccessKeyID, SecretAccessKey: c.S3.SecretAccessKey, PathStyle: c.S3.PathStyle})
			continue
		}
		if err := open(c.Name, c.LocalDir); err != nil {
			return nil, err
		}
	}
	if out[defaultBucket] == nil {
		if err := open(defaultBucket, filepath.Join(dataDir, "buckets", defaultBucket)); err != nil {
			return nil, err
		}
	}
	return out, nil
}
