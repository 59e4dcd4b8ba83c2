// Package atomicfile replaces files so that a reader, or the file system
// after a crash or power loss, sees either the old content or the new,
// never a mix: the new content goes to a temporary file in the same
// folder, is synced, renamed over the target, and the folder is synced.
//
// A crash can leave a temporary file behind, named after its target
// (TARGET.tmp-DIGITS); CleanTemp removes those of one target and IsTemp
// recognises them (for listings that must not show them). Standard library
// only.
package atomicfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrNotDurable is matched (errors.Is) by the error of Write, WriteFunc
// and Create when the new content is in place but the final sync of its
// folder failed: readers see the new content, which may not survive a
// power loss. A caller that must not report a change as failed once it
// is visible can treat it as done.
var ErrNotDurable = errors.New("atomicfile: in place but not yet durable")

// tempMark separates a temporary file's target name from its random
// digits.
const tempMark = ".tmp-"

// Write replaces path with data, atomically and durably. perm (before the
// umask) applies to a new file and to a replaced one. The folder must
// exist. When Write returns nil, the new content survives a crash; when it
// fails, path holds the old content or, if only the final folder sync
// failed (the error matches ErrNotDurable), the new content not yet
// durable.
func Write(path string, data []byte, perm fs.FileMode) error {
	return WriteFunc(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteFunc is Write with the content written by fill through a buffer; an
// error from fill leaves path untouched and is returned.
func WriteFunc(path string, perm fs.FileMode, fill func(io.Writer) error) error {
	tmp, err := writeTemp(path, perm, fill)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("atomicfile: %w", err)
	}
	return Sync(filepath.Dir(path))
}

// Create writes a new file at path with data, durably, and fails with an
// error matching fs.ErrExist if path exists: the file appears whole or not
// at all, and an existing one is never replaced.
func Create(path string, data []byte, perm fs.FileMode) error {
	tmp, err := writeTemp(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	return Sync(filepath.Dir(path))
}

// writeTemp writes a synced temporary file next to path and returns its
// name; on error it leaves none.
func writeTemp(path string, perm fs.FileMode, fill func(io.Writer) error) (name string, err error) {
	var f *os.File
	for range 100 {
		name = path + tempMark + strconv.FormatUint(uint64(rand.Uint32()), 10)
		f, err = os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	if err != nil {
		return "", fmt.Errorf("atomicfile: %w", err)
	}
	w := bufio.NewWriterSize(f, 64<<10)
	err = fill(w)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", fmt.Errorf("atomicfile: %s: %w", path, err)
	}
	return name, nil
}

// Sync fsyncs a file, or a folder (making the renames and links in it
// durable). Its errors wrap ErrNotDurable.
func Sync(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotDurable, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%w: syncing %s: %w", ErrNotDurable, path, err)
	}
	return nil
}

// IsTemp reports whether name (a base name or a path) is a temporary file
// of Write, WriteFunc or Create.
func IsTemp(name string) bool {
	i := strings.LastIndex(name, tempMark)
	return i >= 0 && digits(name[i+len(tempMark):])
}

// digits reports whether s is one or more ASCII digits.
func digits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// CleanTemp removes the temporary files a crash left next to path. Call it
// when nothing writes path (at open): a write in flight would lose its
// temporary file.
func CleanTemp(path string) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	var errs []error
	for _, e := range entries {
		n := e.Name()
		if !e.IsDir() && strings.HasPrefix(n, base+tempMark) && digits(n[len(base)+len(tempMark):]) {
			if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
