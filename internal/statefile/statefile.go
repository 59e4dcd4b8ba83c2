// Package statefile is the StateStore adapter (audit.StateStore) for one
// node: each key is a file in the data dir (a key "a/b" is the file b in
// the folder a), replaced atomically and durably with atomicfile, as the
// files it stands for always were (token.key keeps its name and bytes).
//
// Versions live in memory: a key's version is 1 when its file is first
// read and grows with each Put from a counter shared by every key, so a
// key deleted and created again never shows a version seen before. The
// compare-and-swap is therefore between the goroutines of one process: a
// data dir belongs to one cairn at a time (its stores lock it). Standard
// library only, besides atomicfile.
package statefile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/cairn-audit/cairn/internal/atomicfile"
	"github.com/cairn-audit/cairn/internal/audit"
)

// Dir is the state kept in one folder. Its zero value is not usable: Open.
type Dir struct {
	dir string

	mu       sync.Mutex
	versions map[string]int64 // known keys' versions (0: absent)
	next     int64            // the last version handed out
}

// Open returns the state kept in dir, which must exist.
func Open(dir string) *Dir {
	return &Dir{dir: dir, versions: map[string]int64{}, next: 1}
}

var _ audit.StateStore = (*Dir)(nil)

func (d *Dir) path(key string) (string, error) {
	if !audit.ValidStateKey(key) {
		return "", fmt.Errorf("statefile: key %q: %w", key, audit.ErrStateKey)
	}
	return filepath.Join(d.dir, filepath.FromSlash(key)), nil
}

// versionLocked returns key's version, reading whether its file exists
// the first time.
func (d *Dir) versionLocked(key, path string) (int64, error) {
	if v, ok := d.versions[key]; ok {
		return v, nil
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		d.versions[key] = 0
	case err != nil:
		return 0, fmt.Errorf("statefile: %w", err)
	case !fi.Mode().IsRegular():
		return 0, fmt.Errorf("statefile: %s is not a file", path)
	default:
		d.versions[key] = 1
	}
	return d.versions[key], nil
}

// Get returns the file's content and version; an absent file is (nil, 0, nil).
func (d *Dir) Get(_ context.Context, key string) ([]byte, int64, error) {
	path, err := d.path(key)
	if err != nil {
		return nil, 0, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	v, err := d.versionLocked(key, path)
	if err != nil || v == 0 {
		return nil, 0, err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) { // removed behind our back
		d.versions[key] = 0
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("statefile: %w", err)
	}
	return b, v, nil
}

// Version returns key's version without reading the file.
func (d *Dir) Version(_ context.Context, key string) (int64, error) {
	path, err := d.path(key)
	if err != nil {
		return 0, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.versionLocked(key, path)
}

// Put replaces the file (atomicfile, mode 0600) if its version is still
// version. A write that is in place but whose folder sync failed counts as
// done (atomicfile.ErrNotDurable): readers see it. Other write errors
// (a full disk: syscall.ENOSPC in the chain) change nothing.
func (d *Dir) Put(_ context.Context, key string, value []byte, version int64) (int64, error) {
	path, err := d.path(key)
	if err != nil {
		return 0, err
	}
	if len(value) > audit.MaxStateValue {
		return 0, fmt.Errorf("statefile: %s: %d bytes: %w", key, len(value), audit.ErrStateKey)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	cur, err := d.versionLocked(key, path)
	if err != nil {
		return 0, err
	}
	if cur != version {
		return 0, fmt.Errorf("statefile: %s: %w", key, audit.ErrStateConflict)
	}
	if strings.Contains(key, "/") {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return 0, fmt.Errorf("statefile: %w", err)
		}
	}
	if err := atomicfile.Write(path, value, 0o600); err != nil && !errors.Is(err, atomicfile.ErrNotDurable) {
		return 0, fmt.Errorf("statefile: %w", err)
	}
	d.next++
	d.versions[key] = d.next
	return d.next, nil
}

// Delete removes the file if its version is still version.
func (d *Dir) Delete(_ context.Context, key string, version int64) error {
	path, err := d.path(key)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	cur, err := d.versionLocked(key, path)
	if err != nil {
		return err
	}
	if cur != version {
		return fmt.Errorf("statefile: %s: %w", key, audit.ErrStateConflict)
	}
	if cur == 0 {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("statefile: %w", err)
	}
	d.versions[key] = 0
	return nil
}

// List returns the files whose keys begin with prefix (temporary files of
// atomicfile and hidden files left out), sorted by key. The data dir
// holds other files too (the stores, the journal): callers list a prefix
// of their own.
func (d *Dir) List(ctx context.Context, prefix string) ([]audit.StateEntry, error) {
	var keys []string
	err := filepath.WalkDir(d.dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(d.dir, p)
		key := filepath.ToSlash(rel)
		if e.IsDir() {
			if p != d.dir && !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/") {
				return filepath.SkipDir
			}
			return nil
		}
		if e.Type().IsRegular() && strings.HasPrefix(key, prefix) && audit.ValidStateKey(key) && !atomicfile.IsTemp(e.Name()) {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("statefile: list %q: %w", prefix, err)
	}
	sort.Strings(keys)
	out := make([]audit.StateEntry, 0, len(keys))
	for _, k := range keys {
		b, v, err := d.Get(ctx, k)
		if err != nil {
			return nil, err
		}
		if v != 0 {
			out = append(out, audit.StateEntry{Key: k, Value: b, Version: v})
		}
	}
	return out, nil
}
