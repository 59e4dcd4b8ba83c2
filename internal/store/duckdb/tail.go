package duckdb

import (
	"slices"
	"sync"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
)

// defaultTailBytes is the raw JSON the tail keeps by default
// (Options.TailBytes).
const defaultTailBytes = 32 << 20

// tail keeps the newest appended records in memory, so that the readers
// of the append-order feed that follow the appends (trail delivery, Lake,
// Insights, detections) get them without a DuckDB query and the
// decompression of their frames: for live ingest that read was 6-8% of
// the process's CPU, paid once per reader (issue 15). It holds a run of
// consecutive sequence numbers ending at the store's last, at most max
// bytes of raw JSON; a read after its first record goes to DuckDB.
type tail struct {
	mu    sync.Mutex
	recs  []audit.Appended // consecutive seqs, oldest first
	bytes int64
	max   int64 // 0: the tail keeps nothing
	// received holds each record's received time (Unix seconds), in the
	// order of recs.
	received []int64
	// buckets holds, for each bucket (partKey and hour) of the records
	// in recs, their sequence numbers, oldest first: a lookup answers a
	// bucket from memory when the tail holds as many of its records as
	// the bucket index counts (bucketRecords).
	buckets map[tailBucket][]int64
}

// tailBucket is one bucket of the bucket index.
type tailBucket struct {
	k partKey
	d int64
}

// add appends the records just committed, numbered from first on, as a
// read of the table returns them (times to the second, in UTC). They share
// the caller's memory: Append's callers do not change records once handed
// over (their strings point into Raw, audit.Extract), so no copy is made;
// slices are clipped so that a reader's append cannot reach them.
func (t *tail) add(recs []*audit.Record, first, received int64) {
	if t.max <= 0 || len(recs) == 0 {
		return
	}
	out := make([]audit.Appended, len(recs))
	var size int64
	for i, r := range recs {
		c := *r
		c.Raw = slices.Clip(r.Raw)
		c.Resources = slices.Clip(r.Resources)
		c.Time = time.Unix(r.Time.Unix(), 0).UTC()
		out[i] = audit.Appended{Seq: first + int64(i), Record: c}
		size += int64(len(c.Raw))
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := len(t.recs); n > 0 && t.recs[n-1].Seq+1 != first {
		t.clearLocked() // not consecutive: start again
	}
	if t.buckets == nil {
		t.buckets = map[tailBucket][]int64{}
	}
	for i := range out {
		r := &out[i].Record
		b := tailBucket{partKey{r.Account, r.Region, r.Category}, bucketOf(r.Time.Unix())}
		t.buckets[b] = append(t.buckets[b], out[i].Seq)
		t.received = append(t.received, received)
	}
	t.recs = append(t.recs, out...)
	t.bytes += size
	drop := 0
	for t.bytes > t.max && drop < len(t.recs) {
		r := &t.recs[drop].Record
		t.bytes -= int64(len(r.Raw))
		// The oldest record of its bucket: the first of its seqs.
		b := tailBucket{partKey{r.Account, r.Region, r.Category}, bucketOf(r.Time.Unix())}
		if seqs := t.buckets[b]; len(seqs) <= 1 {
			delete(t.buckets, b)
		} else {
			t.buckets[b] = seqs[1:]
		}
		drop++
	}
	if drop > 0 {
		// Copied, so that the dropped records' memory is freed.
		t.recs = slices.Clone(t.recs[drop:])
		t.received = slices.Clone(t.received[drop:])
	}
}

// bucketRecords returns the records of bucket d of k that the tail holds,
// as a read of the table returns them, with their received times, when it
// holds n of them, and false otherwise. With n the bucket index's count of
// the bucket, true means the tail holds every record of the bucket: the
// index counts a record before its COMMIT and the tail after it, and
// retention clears the tail, so the tail never holds more of a bucket's
// records than the table, nor the table more than the index counts.
func (t *tail) bucketRecords(k partKey, d, n int64) ([]audit.Record, []int64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	seqs := t.buckets[tailBucket{k, d}]
	if n <= 0 || int64(len(seqs)) != n {
		return nil, nil, false
	}
	first := t.recs[0].Seq
	recs := make([]audit.Record, len(seqs))
	received := make([]int64, len(seqs))
	for i, seq := range seqs {
		recs[i] = t.recs[seq-first].Record
		received[i] = t.received[seq-first]
	}
	return recs, received, true
}

// read returns up to limit records after seq after, and whether the tail
// could tell: it holds the record after after, or after is its last (then
// there is nothing more to read).
func (t *tail) read(after int64, limit int) ([]audit.Appended, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.recs) == 0 {
		return nil, false
	}
	first := t.recs[0].Seq
	last := t.recs[len(t.recs)-1].Seq
	if after < first-1 || after > last {
		return nil, false
	}
	i := int(after + 1 - first)
	return slices.Clone(t.recs[i:min(len(t.recs), i+limit)]), true
}

// clear forgets every record (the rows were deleted, or the store closes).
func (t *tail) clear() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.clearLocked()
}

func (t *tail) clearLocked() { t.recs, t.bytes, t.received, t.buckets = nil, 0, nil, nil }
