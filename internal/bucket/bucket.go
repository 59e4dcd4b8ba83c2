// Package bucket is the local-folder bucket adapter (a folder that holds
// objects under their S3 keys), the Bucket interface both adapters
// implement, and, for its callers, the names of the S3 adapter
// (internal/bucket/s3). The errors and key rules are package objects'
// (standard library only), so a consumer that declares its own bucket
// interface (trail.Bucket) links no S3 SDK.
package bucket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cairn-audit/cairn/internal/atomicfile"
	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/bucket/objects"
)

// ErrNoSuchBucket and ErrNoSuchKey are objects' errors (the same values).
var (
	ErrNoSuchBucket = objects.ErrNoSuchBucket
	ErrNoSuchKey    = objects.ErrNoSuchKey
)

// Bucket is an S3 bucket or a local folder holding objects under S3 keys.
// Implementations are safe for concurrent use.
type Bucket interface {
	// Name is the bucket's name as trails name it (S3BucketName).
	Name() string
	// Put writes an object. Metadata become x-amz-meta-* headers on S3,
	// and a sidecar file KEY.metadata.json in a local folder.
	Put(ctx context.Context, key string, body []byte, contentType string, metadata map[string]string) error
	// Get reads an object and its metadata (ErrNoSuchKey when absent).
	Get(ctx context.Context, key string) (body []byte, metadata map[string]string, err error)
	// Open streams an object's body (ErrNoSuchKey when absent); the
	// caller closes it.
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	// List returns up to limit keys under prefix in lexical order, after
	// startAfter ("" = from the first).
	List(ctx context.Context, prefix, startAfter string, limit int) ([]string, error)
	// Check reports ErrNoSuchBucket (wrapped) when the bucket does not
	// exist or cannot be reached.
	Check(ctx context.Context) error
}

// ValidKey reports whether key is an S3 key a local folder can hold
// (objects.ValidKey).
func ValidKey(key string) bool { return objects.ValidKey(key) }

// Local is a bucket kept in a folder: the object KEY is the file DIR/KEY.
type Local struct {
	name, dir string
}

// NewLocal returns the bucket name kept in dir, creating dir.
func NewLocal(name, dir string) (*Local, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("bucket %s: %w", name, err)
	}
	return &Local{name: name, dir: dir}, nil
}

const metaSuffix = ".metadata.json"

// Name returns the bucket's name.
func (l *Local) Name() string { return l.name }

// Put writes the object through a temporary file and a rename, so a reader
// never sees half an object, and syncs it. A key the folder cannot hold
// (ValidKey) is refused with a *CodeError wrapping ErrKeyRefused.
func (l *Local) Put(_ context.Context, key string, body []byte, _ string, metadata map[string]string) error {
	if !ValidKey(key) || strings.HasSuffix(key, metaSuffix) {
		code := "InvalidArgument"
		if len(key) > 1024 {
			code = "KeyTooLongError"
		}
		return &CodeError{Code: code, Err: fmt.Errorf("bucket %s: invalid key %q: %w", l.name, audit.Clip(key, 256), ErrKeyRefused)}
	}
	path := filepath.Join(l.dir, filepath.FromSlash(key))
	if len(metadata) > 0 {
		b, err := marshalMeta(metadata)
		if err != nil {
			return err
		}
		if err := writeAtomic(path+metaSuffix, b); err != nil {
			return fmt.Errorf("bucket %s: %w", l.name, err)
		}
	}
	if err := writeAtomic(path, body); err != nil {
		return fmt.Errorf("bucket %s: %w", l.name, err)
	}
	return nil
}

// Get reads the object and its metadata.
func (l *Local) Get(_ context.Context, key string) ([]byte, map[string]string, error) {
	if !ValidKey(key) {
		return nil, nil, ErrNoSuchKey
	}
	path := filepath.Join(l.dir, filepath.FromSlash(key))
	body, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("bucket %s: %s: %w", l.name, key, ErrNoSuchKey)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("bucket %s: %w", l.name, err)
	}
	var meta map[string]string
	if b, err := os.ReadFile(path + metaSuffix); err == nil {
		if meta, err = unmarshalMeta(b); err != nil {
			return nil, nil, fmt.Errorf("bucket %s: metadata of %s: %w", l.name, key, err)
		}
	}
	return body, meta, nil
}

// Open opens the object's file.
func (l *Local) Open(_ context.Context, key string) (io.ReadCloser, error) {
	if !ValidKey(key) || strings.HasSuffix(key, metaSuffix) {
		return nil, fmt.Errorf("bucket %s: %s: %w", l.name, key, ErrNoSuchKey)
	}
	f, err := os.Open(filepath.Join(l.dir, filepath.FromSlash(key)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("bucket %s: %s: %w", l.name, key, ErrNoSuchKey)
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", l.name, err)
	}
	return f, nil
}

// List walks the folder; it is meant for the modest number of files a
// trail writes, not for millions.
func (l *Local) List(_ context.Context, prefix, startAfter string, limit int) ([]string, error) {
	var keys []string
	err := filepath.WalkDir(l.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || strings.HasSuffix(path, metaSuffix) || atomicfile.IsTemp(d.Name()) {
			return nil
		}
		rel, err := filepath.Rel(l.dir, path)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if strings.HasPrefix(key, prefix) && key > startAfter {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", l.name, err)
	}
	sort.Strings(keys)
	if limit > 0 && len(keys) > limit {
		keys = keys[:limit]
	}
	return keys, nil
}

// Check reports whether the folder exists.
func (l *Local) Check(context.Context) error {
	if fi, err := os.Stat(l.dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("bucket %s: %w", l.name, ErrNoSuchBucket)
	}
	return nil
}

// writeAtomic replaces path with b, creating its folders. The write is
// durable when it returns: only then may a trail's delivery position move
// past the object (power loss).
func writeAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(path, b, 0o600)
}
