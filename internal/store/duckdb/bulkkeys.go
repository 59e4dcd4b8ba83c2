package duckdb

import "math/bits"

// bulkKeys holds the key_hash of every record an import into an empty
// store has appended (BeginImport), so that the duplicate check asks the
// table only about a key whose hash this import wrote: the store held
// nothing else. The key filter alone (under 0.3% false positives) sent a
// few dozen candidates of each batch of 10,000 to a query that scans the
// whole key_hash column, 5% of an import's CPU at 1M records and growing
// with the store (docs/store.md, "Imports").
//
// It is a chain of Bloom filters of 32 bits a key and 8 probes (about 6
// false positives in a million keys at capacity), each twice the size
// of the one before, keys going to the last: 4 bytes a record (40 MB at
// 10M records), no rebuild from the table. A false positive only costs
// the query; a key is never missed, since every appended key is added
// before its COMMIT, whatever the commit's outcome.
type bulkKeys struct {
	filters []bulkFilter
}

type bulkFilter struct {
	bits  []uint64
	keys  int64
	limit int64
}

const (
	bulkKeysBitsPerKey = 32
	bulkKeysProbes     = 8
	bulkKeysFirst      = 1 << 17 // keys the first filter holds
)

// add adds a key hash.
func (b *bulkKeys) add(h uint64) {
	if n := len(b.filters); n == 0 || b.filters[n-1].keys >= b.filters[n-1].limit {
		limit := int64(bulkKeysFirst)
		if n > 0 {
			limit = 2 * b.filters[n-1].limit
		}
		m := uint64(limit * bulkKeysBitsPerKey) // a power of two
		b.filters = append(b.filters, bulkFilter{bits: make([]uint64, m/64), limit: limit})
	}
	f := &b.filters[len(b.filters)-1]
	h1, h2 := bulkProbes(h)
	mask := uint64(len(f.bits))*64 - 1
	for i := range uint64(bulkKeysProbes) {
		p := (h1 + i*h2) & mask
		f.bits[p/64] |= 1 << (p % 64)
	}
	f.keys++
}

// has reports whether h may have been added (never false for one added).
func (b *bulkKeys) has(h uint64) bool {
	h1, h2 := bulkProbes(h)
	for j := range b.filters {
		f := &b.filters[j]
		mask := uint64(len(f.bits))*64 - 1
		in := true
		for i := range uint64(bulkKeysProbes) {
			p := (h1 + i*h2) & mask
			if f.bits[p/64]&(1<<(p%64)) == 0 {
				in = false
				break
			}
		}
		if in {
			return true
		}
	}
	return false
}

// bulkProbes derives the probe positions from a key hash: mixed with
// another finalizer than the key filter's (murmur3's), so that the two
// filters' false positives are independent.
func bulkProbes(h uint64) (h1, h2 uint64) {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h, bits.RotateLeft64(h, 32) | 1
}
