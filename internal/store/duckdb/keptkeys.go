package duckdb

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// keptKeys holds the key_hash of every record an import sealed
// (importSeal), for the key filter's rebuilds (addSealedKeys), in a file
// beside the store instead of Go's heap: at 10M records through a server
// the list was 82 MB of the live heap (docs/store.md, "Memory of a
// server's import"), which Go's soft limit there follows at 1.25x. The
// file is removed as soon as it is made (only the open descriptor keeps
// it): nothing in it outlives the process, and a crash leaves nothing.
// Its pages are the kernel's page cache, not the process's RSS. An
// in-memory store (no data dir) keeps the keys in a slice, as before.
// Under writeMu.
type keptKeys struct {
	f   *os.File // nil: the keys are in mem
	buf []byte   // the last keys, not yet written to f
	off int64    // f's length
	n   int      // keys held
	mem []uint64
	err error // a write to f failed: the keys are gone (see add)
}

// keptKeysBuf is the keys gathered before a write to the file: 64 KiB.
const keptKeysBuf = 8 << 10

// newKeptKeys makes the list in a file in dir, removed at once; with dir
// "" (or when the file cannot be made) in memory.
func newKeptKeys(dir string) *keptKeys {
	k := &keptKeys{}
	if dir == "" {
		return k
	}
	f, err := os.CreateTemp(dir, ".sealed-keys-*")
	if err != nil {
		return k
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		os.Remove(filepath.Join(dir, filepath.Base(f.Name())))
		return k
	}
	k.f = f
	k.buf = make([]byte, 0, 8*keptKeysBuf)
	return k
}

// add appends hashes. false: the keys could not be written, and the
// list is empty from now on (the caller forgets which blocks it held:
// their keys are read from the blocks instead).
func (k *keptKeys) add(hashes []uint64) bool {
	if k.err != nil {
		return false
	}
	if k.f == nil {
		k.mem = append(k.mem, hashes...)
		k.n += len(hashes)
		return true
	}
	for _, h := range hashes {
		k.buf = binary.LittleEndian.AppendUint64(k.buf, h)
		if len(k.buf) == cap(k.buf) {
			if !k.flush() {
				return false
			}
		}
	}
	k.n += len(hashes)
	return true
}

// flush writes buf to the file.
func (k *keptKeys) flush() bool {
	if len(k.buf) == 0 {
		return true
	}
	if _, err := k.f.WriteAt(k.buf, k.off); err != nil {
		k.fail(err)
		return false
	}
	k.off += int64(len(k.buf))
	k.buf = k.buf[:0]
	return true
}

// fail drops the list after err.
func (k *keptKeys) fail(err error) {
	k.err = err
	k.n = 0
	k.buf = nil
	if k.f != nil {
		k.f.Close()
		k.f = nil
	}
}

// len is the keys held.
func (k *keptKeys) len() int {
	if k == nil {
		return 0
	}
	return k.n
}

// each calls fn with every key held. An error reading the file is
// returned (the list is dropped then: the caller's rebuild fails, and
// the next one decodes the blocks).
func (k *keptKeys) each(fn func(uint64)) error {
	if k == nil || k.err != nil {
		return nil
	}
	if k.f == nil {
		for _, h := range k.mem {
			fn(h)
		}
		return nil
	}
	if !k.flush() {
		return fmt.Errorf("duckdb: the sealed keys: %w", k.err)
	}
	chunk := make([]byte, 1<<20)
	for off := int64(0); off < k.off; {
		m, err := k.f.ReadAt(chunk[:min(int64(len(chunk)), k.off-off)], off)
		if err != nil && !(err == io.EOF && int64(m) == k.off-off) {
			k.fail(err)
			return fmt.Errorf("duckdb: the sealed keys: %w", err)
		}
		for i := 0; i+8 <= m; i += 8 {
			fn(binary.LittleEndian.Uint64(chunk[i:]))
		}
		off += int64(m)
	}
	return nil
}

// close closes the file.
func (k *keptKeys) close() {
	if k != nil && k.f != nil {
		k.f.Close()
		k.f = nil
	}
}
