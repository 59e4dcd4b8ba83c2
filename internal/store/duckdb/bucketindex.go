package duckdb

import (
	"cmp"
	"encoding/binary"
	"math"
	"math/bits"
	"slices"
	"strings"
	"sync"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/duckdb/sealed"
)

// bucketSeconds is the width of a bucket of the index: an hour. A lookup
// with a rare value reads the rows of the hours that may hold it; at 10M
// events over 90 days an hour holds about 4,600 rows, a day 111,000, and
// a lookup's cost grows with the rows of its time range (docs/store.md).
const bucketSeconds = 3600

// bucketOf returns the bucket number of a Unix time (floor division).
func bucketOf(t int64) int64 {
	d := t / bucketSeconds
	if t < 0 && t%bucketSeconds != 0 {
		d--
	}
	return d
}

// partKey names one Event History: the records a lookup can ever see.
type partKey struct {
	account, region string
	category        audit.Category
}

// bucketSum summarises one bucket (hour) of one partKey: how many records it
// holds and a Bloom filter of their attribute values. A lookup with
// attributes reads only the buckets whose filter may hold every value; the
// filter has no false negatives, so a bucket it skips has no match.
type bucketSum struct {
	n     int64
	bloom bloom
	dirty bool // changed since it was last written to bucket_index_v1
}

// bucketIndex holds the daySums of every partKey, in memory; Append keeps it
// and the bucket_index_v1 table in step.
type bucketIndex struct {
	mu    sync.RWMutex
	parts map[partKey]map[int64]*bucketSum

	// order holds each partKey's bucket numbers, ascending, for the
	// lookups of one account and region, which walk them newest first
	// and stop once their page is full (candidates' maxBuckets): sorting
	// a month of hours and asking every hour's filter for every lookup
	// was 29% of Store.Lookup's CPU under the API benchmark at 1M records
	// (issue 19, session 14). A bucket made or dropped deletes its
	// partKey's entry (under mu held exclusively); the next lookup sorts
	// it again (under mu shared and orderMu). An entry is never changed
	// in place, so a lookup may read one after orderMu is released.
	orderMu sync.Mutex
	order   map[partKey][]int64

	// names holds each partKey of parts with strings of its own (under
	// mu): a record's account and region are substrings of the slab its
	// importer read it into, so a key kept for long (parts' own, a grown
	// bucket waiting for its rebuild) pins that slab. A 10M-record import
	// kept about 2,700 of them, 285 MB of its Go heap, through the grown
	// buckets of its staged appends (issue 15, session 17).
	names map[partKey]partKey
}

func newBucketIndex() *bucketIndex {
	return &bucketIndex{parts: map[partKey]map[int64]*bucketSum{}, order: map[partKey][]int64{}, names: map[partKey]partKey{}}
}

// own returns k with the strings the index keeps for it (mu held
// exclusively), made when k is new: a key to keep beyond the append that
// gave it.
func (x *bucketIndex) own(k partKey) partKey {
	if o, ok := x.names[k]; ok {
		return o
	}
	o := partKey{strings.Clone(k.account), strings.Clone(k.region), k.category}
	x.names[o] = o
	return o
}

// day returns the summary of (k, d), creating it.
func (x *bucketIndex) bucket(k partKey, d int64) *bucketSum {
	days := x.parts[k]
	if days == nil {
		days = map[int64]*bucketSum{}
		x.parts[x.own(k)] = days
	}
	s := days[d]
	if s == nil {
		s = &bucketSum{bloom: newBloom(0)}
		days[d] = s
		x.reorder(k)
	}
	return s
}

// drop deletes the summary of (k, d), and k's when it was its last.
func (x *bucketIndex) drop(k partKey, d int64) {
	days := x.parts[k]
	if days == nil {
		return
	}
	delete(days, d)
	if len(days) == 0 {
		delete(x.parts, k)
		delete(x.names, k)
	}
	x.reorder(k)
}

// reorder forgets k's sorted buckets (a bucket was made or dropped).
func (x *bucketIndex) reorder(k partKey) {
	x.orderMu.Lock()
	delete(x.order, k)
	x.orderMu.Unlock()
}

// sorted returns k's bucket numbers, ascending (mu held, shared or
// exclusively). The slice is never changed afterwards.
func (x *bucketIndex) sorted(k partKey) []int64 {
	x.orderMu.Lock()
	defer x.orderMu.Unlock()
	if ds, ok := x.order[k]; ok {
		return ds
	}
	days := x.parts[k]
	ds := make([]int64, 0, len(days))
	for d := range days {
		ds = append(ds, d)
	}
	slices.Sort(ds)
	x.order[k] = ds
	return ds
}

// keys returns the partKeys of category whose account and region match
// (an empty account or region: any).
func (x *bucketIndex) keys(account, region string, category audit.Category) []partKey {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []partKey
	for k := range x.parts {
		if (account == "" || k.account == account) && (region == "" || k.region == region) && k.category == category {
			out = append(out, k)
		}
	}
	return out
}

// sized creates the summary of (k, d) with a filter sized for tokens,
// unless it exists.
func (x *bucketIndex) sized(k partKey, d, tokens int64) {
	if b := x.parts[k]; b != nil && b[d] != nil {
		return
	}
	x.bucket(k, d).bloom = newBloom(tokens)
}

// span is a range of buckets of a partKey and the records they hold.
type span struct {
	first, last int64 // buckets, first >= last (newest first)
	n           int64
	gap         int64 // records of the non-candidate buckets between it and the span before (newer)
	// buckets are the non-empty buckets from first to last, newest first
	// (the non-candidate ones between its candidates included): a window
	// probe sizes its windows by their records, so it jumps over the
	// hours that hold none.
	buckets []bucketRows
}

// dropAnswered returns spans without the first bucket of its first span
// (answered from the tail or a directory) and the non-candidate buckets
// after it; a span left without buckets goes. It may change spans[0].
func dropAnswered(spans []span) []span {
	sp := spans[0]
	sp.n -= sp.buckets[0].n
	sp.buckets = sp.buckets[1:]
	for len(sp.buckets) > 0 && !sp.buckets[0].cand {
		sp.n -= sp.buckets[0].n
		sp.buckets = sp.buckets[1:]
	}
	if len(sp.buckets) == 0 {
		return spans[1:]
	}
	sp.first = sp.buckets[0].d
	spans[0] = sp
	return spans
}

// bucketRows is a bucket of a lookup's range: its number, its records,
// and whether its filters may hold every token of the lookup.
type bucketRows struct {
	d, n int64
	cand bool
}

// candidates returns, newest first, spans of the buckets of k within
// [lo, hi] (bucket numbers) whose filters may hold every token. A span runs
// from a candidate bucket through older candidate buckets while it holds
// at most maxRows records, and through non-candidate buckets between them
// while they hold at most maxGap records: a query's cost grows with the
// rows of its time range, so a span reads no more than it must, but one
// query over a few small buckets costs less than one query per bucket.
//
// It also returns the density of the newest densityBuckets buckets of the
// range: how many of them are candidates, and the records they hold.
//
// With several keys (a lookup of every account), a bucket holds the
// records of all of them and is a candidate when any key's filter may hold
// every token.
//
// With one key and maxBuckets > 0, only the newest maxBuckets buckets
// with records are looked at: all reports whether that was every bucket
// of the range (the spans then end at the oldest bucket looked at, and
// the last of them may be cut short), and next is the newest bucket not
// looked at. A lookup whose page fills in the
// newest hours asks no more filters than those hours'; one that needs
// more asks again below the buckets it answered (Store.Lookup).
func (x *bucketIndex) candidates(keys []partKey, lo, hi int64, tokens []uint64, maxRows, maxGap int64, maxBuckets int) (spans []span, dens density, all bool, next int64) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	type day = bucketRows
	var days []day
	all = true
	if len(keys) == 1 {
		// Newest first from the sorted buckets: no sort, and a stop
		// after maxBuckets.
		k := keys[0]
		sums := x.parts[k]
		ds := x.sorted(k)
		top, _ := slices.BinarySearch(ds, hi+1)  // ds[top-1] <= hi
		bottom, _ := slices.BinarySearch(ds, lo) // ds[bottom] >= lo
		if n := top - bottom; n > 0 {
			if maxBuckets > 0 {
				n = min(n, maxBuckets)
			}
			days = make([]day, 0, n)
		}
		for i := top - 1; i >= bottom; i-- {
			s := sums[ds[i]]
			if s == nil || s.n == 0 {
				continue
			}
			if maxBuckets > 0 && len(days) == maxBuckets {
				all, next = false, ds[i]
				break
			}
			cand := true
			for _, t := range tokens {
				if !s.bloom.has(t) {
					cand = false
					break
				}
			}
			days = append(days, day{ds[i], s.n, cand})
		}
	}
	var at map[int64]int // bucket -> index in days, with several keys
	if len(keys) > 1 {
		at = map[int64]int{}
	}
	for _, k := range keys {
		if len(keys) == 1 {
			break
		}
		for d, s := range x.parts[k] {
			if d < lo || d > hi || s.n == 0 {
				continue
			}
			cand := true
			for _, t := range tokens {
				if !s.bloom.has(t) {
					cand = false
					break
				}
			}
			if at == nil {
				days = append(days, day{d, s.n, cand})
				continue
			}
			if i, ok := at[d]; ok {
				days[i].n += s.n
				days[i].cand = days[i].cand || cand
				continue
			}
			at[d] = len(days)
			days = append(days, day{d, s.n, cand})
		}
	}
	if len(keys) > 1 {
		slices.SortFunc(days, func(a, b day) int { return cmp.Compare(b.d, a.d) })
	}
	for _, d := range days[:min(len(days), densityBuckets)] {
		dens.buckets++
		dens.rows += d.n
		if d.cand {
			dens.cand++
		}
	}
	var out []span
	open := false // whether out's last span may still grow
	var pending, gap int64
	start := 0 // index in days of out's last span's first bucket
	for i, d := range days {
		if open && out[len(out)-1].n+pending+d.n <= maxRows && (d.cand || pending+d.n <= maxGap) {
			pending += d.n
			if d.cand {
				sp := &out[len(out)-1]
				sp.last, sp.n, pending = d.d, sp.n+pending, 0
				sp.buckets = days[start : i+1]
			}
			continue
		}
		if open {
			gap, open = pending, false
		}
		pending = 0
		if d.cand {
			out = append(out, span{first: d.d, last: d.d, n: d.n, gap: gap, buckets: days[i : i+1]})
			open, gap, start = true, 0, i
		} else {
			gap += d.n
		}
	}
	return out, dens, all, next
}

// windowLow returns the start of a window ending at to (Unix seconds)
// expected to hold rows records of the buckets of spans, newest first:
// buckets after to are skipped, hours without records take no room, and
// the records of a bucket are taken as spread evenly over its hour (the
// window ends at least a minute before to). It returns false when the
// buckets up to to hold fewer than rows records: the window is all of them.
func windowLow(spans []span, to, rows int64) (int64, bool) {
	for _, sp := range spans {
		for _, b := range sp.buckets {
			start := b.d * bucketSeconds
			if start > to {
				continue
			}
			n, end := b.n, start+bucketSeconds-1
			if to < end {
				// The part of the bucket up to to.
				end = to
				n = max(1, n*(end-start+1)/bucketSeconds)
			}
			if n >= rows {
				w := max(60, ((end-start+1)*rows+n-1)/n)
				return max(start, end-w+1), true
			}
			rows -= n
		}
	}
	return 0, false
}

// densityBuckets is how many of the newest buckets of a lookup's range
// its density is taken over: a week of hours.
const densityBuckets = 168

// density describes the newest buckets of a lookup's range: buckets with
// records, how many of them are candidates, and their records.
type density struct{ buckets, cand, rows int64 }

// everywhere reports whether over 90% of the buckets may hold the value:
// it may be dense, and a lookup's first query probes a window of the
// newest bucket. (A value in fewer buckets is sparse or rare: a window
// would hold few of its matches, and the probe would be one more query.)
func (d density) everywhere() bool { return d.buckets > 0 && d.cand*10 > d.buckets*9 }

// sparseBudget returns, for a value in between a quarter and 90% of the
// buckets, the records a query should span to fill a page of need at
// once, and false for other values. Taking a value's hours to hold
// Poisson-many matches, a share f of candidate buckets means
// -ln(1-f) matches per bucket; the budget covers 1.5 times the buckets
// that many matches need. A value in fewer buckets is rare (its
// candidates are read one by one, not with the gaps between them); one in
// nearly all of them may be dense (the first query probes a window).
func (d density) sparseBudget(need int) (int64, bool) {
	if d.buckets == 0 || d.cand*4 < d.buckets || d.everywhere() {
		return 0, false
	}
	perBucket := -math.Log(1 - float64(d.cand)/float64(d.buckets))
	buckets := 1.5*float64(need)/perBucket + 1
	return int64(buckets * float64(d.rows) / float64(d.buckets)), true
}

// Tokens: one 64-bit hash per (attribute, value), the sealed tier's
// (sealed.Token). ReadOnly has two values and is never selective, so it
// has no token.
func token(k audit.AttributeKey, v string) uint64 {
	return sealed.Token(k, v) & tokenMask
}

// tokenMask is all ones; tests narrow it to make tokens collide.
var tokenMask = ^uint64(0)

// recordTokens returns the tokens of r, appended to dst.
func recordTokens(dst []uint64, r *audit.Record) []uint64 {
	start := len(dst)
	if r.EventID != "" {
		dst = append(dst, sealed.Token(audit.AttrEventID, r.EventID))
	}
	dst = sealed.ValueTokens(dst, r)
	for i := start; i < len(dst); i++ {
		dst[i] &= tokenMask
	}
	return dst
}

// bloom is a Bloom filter of 64-bit tokens with bloomK probes, sized in
// powers of two. It counts the insertions that set a new bit, a fair
// estimate of distinct tokens, and reports when it is over capacity.
type bloom struct {
	bits  []uint64
	added int64
}

const (
	// With 20 bits a token and 7 probes, under 0.1% false positives at
	// capacity: a lookup over 90 days of hourly buckets (2,160) reads a
	// bucket or two in vain. (10 bits and 5 probes, 1%, made 20 false
	// buckets a lookup.) Changing these or the hashing changes the meaning
	// of the stored filters: bump the version in the name of the
	// bucket_index_v1 table with them (a new table is built at Open).
	bloomK       = 7
	bitsPerToken = 20
	minBloomBits = 1 << 10 // 128 bytes: a sparse account keeps little
	maxBloomBits = 1 << 26 // 8 MB: an hour of millions of records
)

func newBloom(tokens int64) bloom {
	n := max(uint64(tokens*bitsPerToken), minBloomBits)
	n = min(uint64(1)<<bits.Len64(n-1), maxBloomBits)
	return bloom{bits: make([]uint64, n/64)}
}

func (b *bloom) mask() uint64 { return uint64(len(b.bits))*64 - 1 }

func (b *bloom) add(t uint64) {
	if len(b.bits) == 0 {
		return // a damaged filter matches everything
	}
	h1, h2 := t, t>>32|t<<32|1
	fresh := false
	for i := range uint64(bloomK) {
		p := (h1 + i*h2) & b.mask()
		w, bit := p/64, uint64(1)<<(p%64)
		if b.bits[w]&bit == 0 {
			fresh = true
			b.bits[w] |= bit
		}
	}
	if fresh {
		b.added++
	}
}

func (b *bloom) has(t uint64) bool {
	if len(b.bits) == 0 {
		return true
	}
	h1, h2 := t, t>>32|t<<32|1
	for i := range uint64(bloomK) {
		p := (h1 + i*h2) & b.mask()
		if b.bits[p/64]&(uint64(1)<<(p%64)) == 0 {
			return false
		}
	}
	return true
}

// full reports whether the filter holds more tokens than it was sized for
// and can still grow.
func (b *bloom) full() bool {
	return b.added*bitsPerToken > int64(len(b.bits))*64 && len(b.bits)*64 < maxBloomBits
}

// fold halves the filter while it stays within bitsPerToken a token
// (added) and minBloomBits: bit i of the half is bit i or bit i+half of
// the whole. Probes take their place modulo the size (mask), so the folded
// filter answers has exactly as one built at the smaller size would: no
// false negative, and the false-positive rate of its size. A filter sized
// for more tokens than it got (sized per batch at append, twice the
// expected tokens at a rebuild) shrinks to what it holds.
func (b *bloom) fold() {
	for len(b.bits)*64/2 >= minBloomBits && b.added*bitsPerToken <= int64(len(b.bits))*64/2 {
		half := len(b.bits) / 2
		for i := range half {
			b.bits[i] |= b.bits[half+i]
		}
		b.bits = b.bits[:half:half]
	}
}

// marshal encodes the filter: added, then the words, little endian.
func (b *bloom) marshal() []byte {
	out := make([]byte, 8+8*len(b.bits))
	binary.LittleEndian.PutUint64(out, uint64(b.added))
	for i, w := range b.bits {
		binary.LittleEndian.PutUint64(out[8+8*i:], w)
	}
	return out
}

// unmarshalBloom decodes a filter; a malformed one becomes an empty filter
// that matches everything (has on no bits is true), so a damaged index
// costs speed, never results.
func unmarshalBloom(p []byte) bloom {
	n := (len(p) - 8) / 8
	if len(p) < 8 || (len(p)-8)%8 != 0 || n == 0 || n&(n-1) != 0 || n*64 > maxBloomBits {
		return bloom{}
	}
	b := bloom{bits: make([]uint64, n), added: int64(binary.LittleEndian.Uint64(p))}
	for i := range b.bits {
		b.bits[i] = binary.LittleEndian.Uint64(p[8+8*i:])
	}
	return b
}
