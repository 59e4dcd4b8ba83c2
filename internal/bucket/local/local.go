// Package local is the bucket adapter for a local folder: a folder that
// holds objects under their S3 keys, in the layout of an S3 bucket (the
// default trail bucket in the data dir, local_dir buckets, validate-logs
// --local-dir). Its errors and key rules are package objects'; the S3
// adapter is its sibling, bucket/s3.
package local

import (
	"context"
	"encoding/json"
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

// Bucket is a bucket kept in a folder: the object KEY is the file DIR/KEY.
// It is safe for concurrent use.
type Bucket struct {
	name, dir string
}

// New returns the bucket name kept in dir, creating dir.
func New(name, dir string) (*Bucket, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("bucket %s: %w", name, err)
	}
	return &Bucket{name: name, dir: dir}, nil
}

const metaSuffix = ".metadata.json"

// Name returns the bucket's name.
func (l *Bucket) Name() string { return l.name }

// Put writes the object through a temporary file and a rename, so a reader
// never sees half an object, and syncs it. A key the folder cannot hold
// (ValidKey) is refused with a *CodeError wrapping objects.ErrKeyRefused.
func (l *Bucket) Put(_ context.Context, key string, body []byte, _ string, metadata map[string]string) error {
	if !objects.ValidKey(key) || strings.HasSuffix(key, metaSuffix) {
		code := "InvalidArgument"
		if len(key) > 1024 {
			code = "KeyTooLongError"
		}
		return &objects.CodeError{Code: code, Err: fmt.Errorf("bucket %s: invalid key %q: %w", l.name, audit.Clip(key, 256), objects.ErrKeyRefused)}
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
func (l *Bucket) Get(_ context.Context, key string) ([]byte, map[string]string, error) {
	if !objects.ValidKey(key) {
		return nil, nil, objects.ErrNoSuchKey
	}
	path := filepath.Join(l.dir, filepath.FromSlash(key))
	body, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("bucket %s: %s: %w", l.name, key, objects.ErrNoSuchKey)
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
func (l *Bucket) Open(_ context.Context, key string) (io.ReadCloser, error) {
	if !objects.ValidKey(key) || strings.HasSuffix(key, metaSuffix) {
		return nil, fmt.Errorf("bucket %s: %s: %w", l.name, key, objects.ErrNoSuchKey)
	}
	f, err := os.Open(filepath.Join(l.dir, filepath.FromSlash(key)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("bucket %s: %s: %w", l.name, key, objects.ErrNoSuchKey)
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", l.name, err)
	}
	return f, nil
}

// List walks the folder; it is meant for the modest number of files a
// trail writes, not for millions.
func (l *Bucket) List(_ context.Context, prefix, startAfter string, limit int) ([]string, error) {
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
func (l *Bucket) Check(context.Context) error {
	if fi, err := os.Stat(l.dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("bucket %s: %w", l.name, objects.ErrNoSuchBucket)
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

// marshalMeta and unmarshalMeta are the folder's metadata sidecar
// (KEY.metadata.json).
func marshalMeta(m map[string]string) ([]byte, error) { return json.Marshal(m) }

func unmarshalMeta(b []byte) (map[string]string, error) {
	var m map[string]string
	err := json.Unmarshal(b, &m)
	return m, err
}
