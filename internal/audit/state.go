package audit

import (
	"context"
	"errors"
	"strings"
)

// StateStore is the port for durable named state: the small documents a
// node needs besides Event History (the trails registry, the NextToken
// key, console sessions...). Two adapters implement it: files in the data
// dir (internal/statefile, one node) and a table of the PostgreSQL store
// (internal/store/postgres, every node of a cluster). Features take the
// port; cmd/cairn picks the adapter (docs/scale.md).
//
// Every value has a version: 0 means absent, and each Put of a key gives
// it a greater one. Put and Delete compare the version the caller read
// with the stored one and fail with ErrStateConflict when another writer
// (another node, or another goroutine) changed the key since: the caller
// reads again and retries, or reports the conflict, never overwrites.
// Keys are ValidStateKey's; a value is at most MaxStateValue bytes.
type StateStore interface {
	// Get returns the value of key and its version; an absent key is
	// (nil, 0, nil).
	Get(ctx context.Context, key string) ([]byte, int64, error)
	// Version returns key's version (0: absent), without its value: the
	// cheap check of a reader that caches the value.
	Version(ctx context.Context, key string) (int64, error)
	// Put stores value under key if key's version is still version (0:
	// the key must not exist) and returns the new version; else it
	// returns ErrStateConflict and changes nothing.
	Put(ctx context.Context, key string, value []byte, version int64) (int64, error)
	// Delete removes key if its version is still version; else
	// ErrStateConflict. Deleting an absent key with version 0 is nil.
	Delete(ctx context.Context, key string, version int64) error
	// List returns the keys that begin with prefix, with their values and
	// versions, sorted by key.
	List(ctx context.Context, prefix string) ([]StateEntry, error)
}

// StateEntry is one key of a StateStore with its value and version.
type StateEntry struct {
	Key     string
	Value   []byte
	Version int64
}

// ErrStateConflict is the error of a Put or Delete whose version is no
// longer the stored one: someone else changed the key since it was read.
var ErrStateConflict = errors.New("state: the value changed since it was read")

// ErrStateKey is the error of a key ValidStateKey refuses, or of a value
// over MaxStateValue.
var ErrStateKey = errors.New("state: invalid key or value")

// MaxStateValue bounds a value (the trails registry of every account is
// the largest: a few kB a trail).
const MaxStateValue = 64 << 20

// ValidStateKey reports whether key can name state: 1 to 200 characters
// of [A-Za-z0-9._-] in segments separated by "/", no segment empty or
// beginning with a dot (a key is a file name in the data dir, so nothing
// may climb out of it or hide).
func ValidStateKey(key string) bool {
	if key == "" || len(key) > 200 {
		return false
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg[0] == '.' {
			return false
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
				return false
			}
		}
	}
	return true
}
