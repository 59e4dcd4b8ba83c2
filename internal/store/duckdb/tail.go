package duckdb

import (
	"cmp"
	"slices"
	"strings"
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
	buckets map[tailBucket]*tailSeqs
}

// tailSeqs are the sequence numbers of a bucket's records in the tail,
// oldest first, and how far their times are from that order: records
// mostly arrive in time order, or nearly (concurrent callers' records
// reach a batch a second or two apart), so a newest page reads only the
// newest of them.
type tailSeqs struct {
	seqs []int64
	max  int64 // the latest time added (Unix seconds)
	// lag is the most a record's time was behind the latest time added
	// before it: every record up to one of time t has a time <= t+lag.
	lag int64
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
		t.buckets = map[tailBucket]*tailSeqs{}
	}
	for i := range out {
		r := &out[i].Record
		sec := r.Time.Unix()
		b := tailBucket{partKey{r.Account, r.Region, r.Category}, bucketOf(sec)}
		bs := t.buckets[b]
		switch {
		case bs == nil:
			bs = &tailSeqs{max: sec}
			t.buckets[b] = bs
		case sec < bs.max:
			bs.lag = max(bs.lag, bs.max-sec)
		default:
			bs.max = sec
		}
		bs.seqs = append(bs.seqs, out[i].Seq)
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
		if bs := t.buckets[b]; len(bs.seqs) <= 1 {
			delete(t.buckets, b)
		} else {
			bs.seqs = bs.seqs[1:]
		}
		drop++
	}
	if drop > 0 {
		// The dropped slots are cleared, so that their records' memory is
		// freed, and cut off: the arrays are given up at their next growth
		// (append copies only what is kept). Cloning the tail here cost
		// every append the whole tail's copy (7% of live ingest's CPU).
		// Readers never hold these arrays: read and newestOf copy.
		clear(t.recs[:drop])
		t.recs = t.recs[drop:]
		t.received = t.received[drop:]
	}
}

// newestOf returns the records of bucket d of k that keep accepts, when
// the tail holds n records of that bucket, and false otherwise: at most
// need of them, newest first (by time, then eventID, both descending, as
// a lookup's queries order them), as a read of the table returns them.
// keep gets each record and its received time (Unix seconds). With n the
// bucket index's count of the bucket, true means the tail holds every
// record of the bucket: the index counts a record before its COMMIT and
// the tail after it, and retention clears the tail before it lowers the
// counts, so the tail never holds more of a bucket's records than the
// table, nor the table more than the index counts.
func (t *tail) newestOf(k partKey, d, n int64, need int, keep func(r *audit.Record, received int64) bool) ([]audit.Record, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	bs := t.buckets[tailBucket{k, d}]
	if bs == nil || n <= 0 || int64(len(bs.seqs)) != n || need <= 0 {
		return nil, false
	}
	first := t.recs[0].Seq
	var out []audit.Record
	var cut int64 // a lower bound of the need-th newest match's time
	for i := len(bs.seqs) - 1; i >= 0; i-- {
		j := bs.seqs[i] - first
		r := &t.recs[j].Record
		sec := r.Time.Unix()
		if len(out) >= need && sec+bs.lag < cut {
			// The rest are older than need matches (those of the same
			// second were taken: their eventIDs decide).
			break
		}
		if keep(r, t.received[j]) {
			out = append(out, *r)
			if len(out) == need {
				// need matches are at least this recent: the need-th
				// newest is not older.
				cut = sec
				for _, o := range out {
					cut = min(cut, o.Time.Unix())
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b audit.Record) int {
		if c := cmp.Compare(b.Time.Unix(), a.Time.Unix()); c != 0 {
			return c
		}
		return strings.Compare(b.EventID, a.EventID)
	})
	return out[:min(len(out), need)], true
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
