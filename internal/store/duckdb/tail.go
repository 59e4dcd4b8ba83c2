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
	mu sync.Mutex
	// recs holds the records, consecutive seqs, oldest first, with each
	// one's received time (Unix seconds).
	recs  tailRecs
	bytes int64
	max   int64 // 0: the tail keeps nothing
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
//
// The first sealed of recs went to the sealed tier (a serving store's
// stage, importseal.go): the tail keeps them for the feed (read), in their
// place in the sequence, but not in its buckets, which answer for the
// records the bucket index counts, and it counts no sealed record
// (newestOf, since): a bucket of sealed and hot records is then answered
// by the table and the sealed tier, each record by one.
func (t *tail) add(recs []*audit.Record, first, received int64, sealed int) {
	if t.max <= 0 || len(recs) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := t.recs.len(); n > 0 && t.recs.at(n-1).Seq+1 != first {
		t.clearLocked() // not consecutive: start again
	}
	if t.buckets == nil {
		t.buckets = map[tailBucket]*tailSeqs{}
	}
	for i, r := range recs {
		a := t.recs.push(received)
		*a = audit.Appended{Seq: first + int64(i), Record: *r}
		c := &a.Record
		c.Raw = slices.Clip(r.Raw)
		c.Resources = slices.Clip(r.Resources)
		sec := r.Time.Unix()
		c.Time = time.Unix(sec, 0).UTC()
		t.bytes += int64(len(c.Raw))
		if i < sealed {
			continue
		}
		b := tailBucket{partKey{c.Account, c.Region, c.Category}, bucketOf(sec)}
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
		bs.seqs = append(bs.seqs, a.Seq)
	}
	for t.bytes > t.max && t.recs.len() > 0 {
		r := &t.recs.at(0).Record
		t.bytes -= int64(len(r.Raw))
		// The oldest record of its bucket: the first of its seqs (a
		// sealed record is in none).
		b := tailBucket{partKey{r.Account, r.Region, r.Category}, bucketOf(r.Time.Unix())}
		switch bs := t.buckets[b]; {
		case bs == nil || bs.seqs[0] != t.recs.at(0).Seq:
		case len(bs.seqs) <= 1:
			delete(t.buckets, b)
		default:
			bs.seqs = bs.seqs[1:]
		}
		t.recs.pop()
	}
}

// tailChunkLen is how many records a chunk of the tail holds.
const tailChunkLen = 1024

// tailRecs is a queue of records in chunks of tailChunkLen: records are
// pushed at the end and popped at the front without moving the others.
// The tail was one slice, cut at the front and grown at the end: in a
// full tail every append that dropped records grew it again, copying the
// whole tail once in every few appends (7% of live ingest's CPU, then 5%
// with the copy made only at growth; issue 15). A chunk emptied at the
// front is kept for the next one needed at the end.
type tailRecs struct {
	chunks []*tailChunk
	head   int // index of the first record in chunks[0]
	n      int
	spare  *tailChunk
}

type tailChunk struct {
	recs     [tailChunkLen]audit.Appended
	received [tailChunkLen]int64
}

func (q *tailRecs) len() int { return q.n }

// at returns the i-th record, 0 <= i < len.
func (q *tailRecs) at(i int) *audit.Appended {
	p := q.head + i
	return &q.chunks[p/tailChunkLen].recs[p%tailChunkLen]
}

// receivedAt returns the received time of the i-th record.
func (q *tailRecs) receivedAt(i int) int64 {
	p := q.head + i
	return q.chunks[p/tailChunkLen].received[p%tailChunkLen]
}

// push adds a record received at received at the end and returns its
// slot (zeroed) to fill.
func (q *tailRecs) push(received int64) *audit.Appended {
	p := q.head + q.n
	if p/tailChunkLen == len(q.chunks) {
		c := q.spare
		q.spare = nil
		if c == nil {
			c = new(tailChunk)
		}
		q.chunks = append(q.chunks, c)
	}
	c := q.chunks[p/tailChunkLen]
	c.received[p%tailChunkLen] = received
	q.n++
	return &c.recs[p%tailChunkLen]
}

// pop drops the first record, clearing its slot so that its memory is
// freed.
func (q *tailRecs) pop() {
	c := q.chunks[0]
	c.recs[q.head] = audit.Appended{}
	q.head++
	q.n--
	if q.head == tailChunkLen || q.n == 0 {
		// Every slot it held was cleared: it is clean for reuse.
		q.spare = c
		q.chunks = append(q.chunks[:0], q.chunks[1:]...)
		q.head = 0
	}
}

// copyTo appends records i to j-1 to out.
func (q *tailRecs) copyTo(out []audit.Appended, i, j int) []audit.Appended {
	for i < j {
		p := q.head + i
		c, k := q.chunks[p/tailChunkLen], p%tailChunkLen
		m := min(j-i, tailChunkLen-k)
		out = append(out, c.recs[k:k+m]...)
		i += m
	}
	return out
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
	return t.newestLocked(bs, 0, need, keep), true
}

// since returns the records of bucket d of k with sequence numbers after
// after that keep accepts, at most need of them, newest first (as
// newestOf), how many records of the bucket after after the tail holds,
// and whether it reaches back to after: it keeps records (not an
// import's), and its first is at most after+1 (it holds a run of
// consecutive sequence numbers ending at the last it was given), or it
// is empty and committed, the last sequence number committed, is at most
// after. A directory read before appends to its bucket, holding the
// records up to after, is whole with them (Store.dirSince).
func (t *tail) since(k partKey, d, after, committed int64, need int, keep func(r *audit.Record, received int64) bool) (out []audit.Record, held int64, reaches bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.max <= 0:
		return nil, 0, false
	case t.recs.len() == 0:
		return nil, 0, committed <= after
	case t.recs.at(0).Seq > after+1:
		return nil, 0, false
	}
	bs := t.buckets[tailBucket{k, d}]
	if bs == nil {
		return nil, 0, true
	}
	from, _ := slices.BinarySearch(bs.seqs, after+1)
	held = int64(len(bs.seqs) - from)
	if need > 0 && held > 0 {
		out = t.newestLocked(bs, from, need, keep)
	}
	return out, held, true
}

// newestLocked returns the records of bs.seqs[from:] that keep accepts,
// at most need, newest first (newestOf), under t.mu.
func (t *tail) newestLocked(bs *tailSeqs, from, need int, keep func(r *audit.Record, received int64) bool) []audit.Record {
	first := t.recs.at(0).Seq
	var out []audit.Record
	var cut int64 // a lower bound of the need-th newest match's time
	for i := len(bs.seqs) - 1; i >= from; i-- {
		j := int(bs.seqs[i] - first)
		r := &t.recs.at(j).Record
		sec := r.Time.Unix()
		if len(out) >= need && sec+bs.lag < cut {
			// The rest are older than need matches (those of the same
			// second were taken: their eventIDs decide).
			break
		}
		if keep(r, t.recs.receivedAt(j)) {
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
	return out[:min(len(out), need)]
}

// read returns up to limit records after seq after, and whether the tail
// could tell: it holds the record after after, or after is its last (then
// there is nothing more to read).
func (t *tail) read(after int64, limit int) ([]audit.Appended, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.recs.len()
	if n == 0 {
		return nil, false
	}
	first := t.recs.at(0).Seq
	last := t.recs.at(n - 1).Seq
	if after < first-1 || after > last {
		return nil, false
	}
	i := int(after + 1 - first)
	j := min(n, i+max(limit, 0))
	return t.recs.copyTo(make([]audit.Appended, 0, j-i), i, j), true
}

// clear forgets every record (the rows were deleted, or the store closes).
func (t *tail) clear() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.clearLocked()
}

// disable empties the tail and keeps nothing from then on (an offline
// import: BeginImport).
func (t *tail) disable() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.clearLocked()
	t.max = 0
}

func (t *tail) clearLocked() { t.recs, t.bytes, t.buckets = tailRecs{}, 0, nil }
