package duckdb

import (
	"context"
	"fmt"
	"math/bits"
)

// keyFilter is a Bloom filter of the key_hash of every stored record,
// kept by the writer so that Append asks DuckDB about the records that may
// be stored already, not all of them: an import of new records skips the
// duplicate check's scan of key_hash, which grew with the store (one scan
// of the whole column per transaction). A record the filter does not hold
// is certainly new; one it holds is checked in the table as before, so
// false positives (records deleted by retention, a rolled-back append, a
// filter past its capacity) only cost that query.
//
// It is built at the first append after Open from the table, sized for
// twice the rows stored, and rebuilt twice as large when it passes its
// capacity. 16 bits and 4 probes per key: under 0.3% false positives,
// 2 MB a million records.
type keyFilter struct {
	bits  []uint64
	keys  int64 // keys added
	limit int64 // keys it is sized for
}

const (
	keyFilterBitsPerKey = 16
	keyFilterProbes     = 4
	keyFilterMinKeys    = 1 << 16
)

func newKeyFilter(keys int64) *keyFilter {
	keys = max(keys, keyFilterMinKeys)
	n := uint64(keys * keyFilterBitsPerKey)
	n = uint64(1) << bits.Len64(n-1)
	return &keyFilter{bits: make([]uint64, n/64), limit: int64(n / keyFilterBitsPerKey)}
}

// probes derives the filter's bit positions from a key hash (FNV-1a, whose
// low bits are weak, so it is mixed first: splitmix64's finalizer).
func (f *keyFilter) probes(h uint64) (h1, h2 uint64) {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h, h>>32 | h<<32 | 1
}

func (f *keyFilter) add(h uint64) {
	h1, h2 := f.probes(h)
	mask := uint64(len(f.bits))*64 - 1
	for i := range uint64(keyFilterProbes) {
		p := (h1 + i*h2) & mask
		f.bits[p/64] |= 1 << (p % 64)
	}
	f.keys++
}

func (f *keyFilter) has(h uint64) bool {
	h1, h2 := f.probes(h)
	mask := uint64(len(f.bits))*64 - 1
	for i := range uint64(keyFilterProbes) {
		p := (h1 + i*h2) & mask
		if f.bits[p/64]&(1<<(p%64)) == 0 {
			return false
		}
	}
	return true
}

// keyFilter returns the writer's key filter, building it from the table when
// there is none or the one there is passed its capacity (room for extra
// more keys is made first). Called under writeMu; s.keys is set under
// keysMu too, as its keys are added.
func (s *Store) keyFilter(ctx context.Context, extra int) (*keyFilter, error) {
	if s.keys != nil && s.keys.keys+int64(extra) <= s.keys.limit {
		return s.keys, nil
	}
	var n int64
	if err := s.wconn.QueryRowContext(ctx, `SELECT count(*) FROM events`).Scan(&n); err != nil {
		return nil, fmt.Errorf("duckdb: key filter: %w", err)
	}
	f := newKeyFilter(2 * (n + int64(extra)))
	rows, err := s.wconn.QueryContext(ctx, `SELECT key_hash FROM events`)
	if err != nil {
		return nil, fmt.Errorf("duckdb: key filter: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var h uint64
		if err := rows.Scan(&h); err != nil {
			return nil, fmt.Errorf("duckdb: key filter: %w", err)
		}
		f.add(h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("duckdb: key filter: %w", err)
	}
	s.keysMu.Lock()
	s.keys = f
	s.keysMu.Unlock()
	return f, nil
}
