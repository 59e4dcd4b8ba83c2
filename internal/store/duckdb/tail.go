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
}

// add appends the records just committed, numbered from first on, as a
// read of the table returns them (times to the second, in UTC). They share
// the caller's memory: Append's callers do not change records once handed
// over (their strings point into Raw, audit.Extract), so no copy is made;
// slices are clipped so that a reader's append cannot reach them.
func (t *tail) add(recs []*audit.Record, first int64) {
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
	t.recs = append(t.recs, out...)
	t.bytes += size
	drop := 0
	for t.bytes > t.max && drop < len(t.recs) {
		t.bytes -= int64(len(t.recs[drop].Record.Raw))
		drop++
	}
	if drop > 0 {
		// Copied, so that the dropped records' memory is freed.
		t.recs = slices.Clone(t.recs[drop:])
	}
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

func (t *tail) clearLocked() { t.recs, t.bytes = nil, 0 }
