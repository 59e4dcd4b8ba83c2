// Package audittest provides test doubles for the audit domain: an
// in-memory Store that implements the reference semantics of audit.Query.
package audittest

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
)

// MemStore is an in-memory audit.Store. It is slow (every lookup scans and
// sorts) and exact: it defines what the real stores must answer.
type MemStore struct {
	// Now is the clock that stamps when a record was received (default
	// time.Now).
	Now     func() time.Time
	mu      sync.Mutex
	records []audit.Record
	seqs    []int64     // seqs[i] is the sequence number of records[i]
	recv    []time.Time // recv[i] is when records[i] was appended
	lastSeq int64
	keys    map[string]bool
	closed  bool
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{keys: map[string]bool{}} }

// Append stores the records not seen before (by Account and EventID).
func (m *MemStore) Append(ctx context.Context, rs []audit.Record) (audit.AppendResult, error) {
	var res audit.AppendResult
	inserted, err := m.AppendEach(ctx, rs)
	for _, ok := range inserted {
		if ok {
			res.Inserted++
		} else {
			res.Duplicates++
		}
	}
	return res, err
}

// AppendEach is Append telling per record whether it was inserted.
func (m *MemStore) AppendEach(_ context.Context, rs []audit.Record) ([]bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	inserted := make([]bool, len(rs))
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	at := now()
	for i, r := range rs {
		k := r.Account + "\x00" + r.EventID
		if m.keys[k] {
			continue
		}
		m.keys[k] = true
		r.Raw = slices.Clone(r.Raw)
		m.records = append(m.records, r)
		m.lastSeq++
		m.seqs = append(m.seqs, m.lastSeq)
		m.recv = append(m.recv, at)
		inserted[i] = true
	}
	return inserted, nil
}

// Lookup scans every record.
func (m *MemStore) Lookup(_ context.Context, q audit.Query) (audit.Page, error) {
	m.mu.Lock()
	var hits []audit.Record
	for i := range m.records {
		r := &m.records[i]
		if q.Matches(r) && (q.After == nil || q.After.Before(r)) && !m.recv[i].Before(q.ReceivedSince) {
			hits = append(hits, *r)
		}
	}
	m.mu.Unlock()
	slices.SortFunc(hits, func(a, b audit.Record) int { return audit.Newer(&a, &b) })
	var p audit.Page
	if len(hits) > q.Limit {
		hits = hits[:q.Limit]
		p.Next = q.CursorOf(&hits[len(hits)-1])
	}
	p.Records = hits
	return p, nil
}

// DeleteReceivedBefore removes records appended before t.
func (m *MemStore) DeleteReceivedBefore(_ context.Context, t time.Time) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	kept, keptSeqs, keptRecv := m.records[:0], m.seqs[:0], m.recv[:0]
	for i, r := range m.records {
		if m.recv[i].Before(t) {
			delete(m.keys, r.Account+"\x00"+r.EventID)
			n++
			continue
		}
		kept, keptSeqs, keptRecv = append(kept, r), append(keptSeqs, m.seqs[i]), append(keptRecv, m.recv[i])
	}
	m.records, m.seqs, m.recv = kept, keptSeqs, keptRecv
	return n, nil
}

// LastSeq returns the last sequence number given.
func (m *MemStore) LastSeq(context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastSeq, nil
}

// ReadAppended returns the records appended after seq after, in append order.
func (m *MemStore) ReadAppended(_ context.Context, after int64, limit int) ([]audit.Appended, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i, _ := slices.BinarySearch(m.seqs, after+1)
	var out []audit.Appended
	for ; i < len(m.records) && len(out) < limit; i++ {
		out = append(out, audit.Appended{Seq: m.seqs[i], Record: m.records[i]})
	}
	return out, nil
}

// Len returns the number of stored records.
func (m *MemStore) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.records)
}

// Close marks the store closed.
func (m *MemStore) Close() error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	return nil
}
