// Package importertest provides test doubles for the importer: a Sink
// that keeps every record it is given, and one that discards them.
package importertest

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/importer"
)

// Sink is an in-memory importer.ReportingSink. It deduplicates on account
// and eventID like a store, keeps a copy of every record it stores, and can
// be told to refuse records or to fail.
type Sink struct {
	// Refuse, when set, names why a record is refused ("" accepts it).
	Refuse func(audit.Record) string
	// FailAfter, when positive, makes the Append calls after that many
	// fail with Err.
	FailAfter int
	// Err is the error of failing calls.
	Err error

	mu      sync.Mutex
	calls   int
	sizes   []int
	records []audit.Record
	keys    map[string]bool
}

// Append stores the records not seen before.
func (s *Sink) Append(ctx context.Context, records []audit.Record) (audit.AppendResult, error) {
	res, _, err := s.AppendReport(ctx, records)
	return res, err
}

// AppendReport stores the records not seen before and not refused.
func (s *Sink) AppendReport(_ context.Context, records []audit.Record) (audit.AppendResult, []importer.Failure, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.FailAfter > 0 && s.calls > s.FailAfter {
		return audit.AppendResult{}, nil, s.Err
	}
	s.sizes = append(s.sizes, len(records))
	if s.keys == nil {
		s.keys = map[string]bool{}
	}
	var (
		res   audit.AppendResult
		fails []importer.Failure
	)
	for i, r := range records {
		if s.Refuse != nil {
			if why := s.Refuse(r); why != "" {
				fails = append(fails, importer.Failure{Index: i, Code: "Refused", Message: why})
				continue
			}
		}
		k := r.Account + "\x00" + r.EventID
		if s.keys[k] {
			res.Duplicates++
			continue
		}
		s.keys[k] = true
		r.Raw = slices.Clone(r.Raw)
		s.records = append(s.records, r)
		res.Inserted++
	}
	return res, fails, nil
}

// Records returns the records stored, in the order they came.
func (s *Sink) Records() []audit.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.records)
}

// BatchSizes returns the size of every batch received.
func (s *Sink) BatchSizes() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sizes)
}

// Discard is a Sink that counts every record as inserted and keeps none,
// for benchmarks.
type Discard struct{}

// Append counts records as inserted.
func (Discard) Append(_ context.Context, records []audit.Record) (audit.AppendResult, error) {
	return audit.AppendResult{Inserted: len(records)}, nil
}

// EachSink is an in-memory importer.EachSink (a Sink that is not a
// ReportingSink), deduplicating like Sink.
type EachSink struct {
	s Sink
}

// Append stores the records not seen before.
func (e *EachSink) Append(ctx context.Context, records []audit.Record) (audit.AppendResult, error) {
	return e.s.Append(ctx, records)
}

// AppendEach stores the records not seen before and says which.
func (e *EachSink) AppendEach(_ context.Context, records []audit.Record) ([]bool, error) {
	e.s.mu.Lock()
	defer e.s.mu.Unlock()
	e.s.calls++
	if e.s.FailAfter > 0 && e.s.calls > e.s.FailAfter {
		return nil, e.s.Err
	}
	e.s.sizes = append(e.s.sizes, len(records))
	if e.s.keys == nil {
		e.s.keys = map[string]bool{}
	}
	inserted := make([]bool, len(records))
	for i, r := range records {
		k := r.Account + "\x00" + r.EventID
		if e.s.keys[k] {
			continue
		}
		e.s.keys[k] = true
		r.Raw = slices.Clone(r.Raw)
		e.s.records = append(e.s.records, r)
		inserted[i] = true
	}
	return inserted, nil
}

// Records returns the records stored, in the order they came.
func (e *EachSink) Records() []audit.Record { return e.s.Records() }

// BatchSizes returns the size of every batch received.
func (e *EachSink) BatchSizes() []int { return e.s.BatchSizes() }

// Fail makes the AppendEach calls after the first n fail with err.
func (e *EachSink) Fail(n int, err error) {
	e.s.mu.Lock()
	defer e.s.mu.Unlock()
	e.s.FailAfter, e.s.Err = n, err
}

// PreparingSink is an EachSink that is also an importer.PreparingSink:
// PrepareEach waits Delay(records) (nil: no wait), standing for the
// compression a store does before its lock, so that batches prepared at
// once finish in another order than they came.
type PreparingSink struct {
	EachSink
	Delay func(records []audit.Record) time.Duration
}

// PrepareEach waits Delay and returns AppendEach of the records.
func (p *PreparingSink) PrepareEach(records []audit.Record) func(context.Context) ([]bool, error) {
	if p.Delay != nil {
		time.Sleep(p.Delay(records))
	}
	return func(ctx context.Context) ([]bool, error) { return p.AppendEach(ctx, records) }
}

// EachReportingSink is an in-memory importer.EachReportingSink: Sink's
// refusals and deduplication, answered per record for whole batches.
type EachReportingSink struct {
	Sink
}

// AppendEachReport stores the records not seen before and not refused,
// and says which were stored and which refused.
func (e *EachReportingSink) AppendEachReport(_ context.Context, records []audit.Record) ([]bool, []importer.Failure, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls++
	if e.FailAfter > 0 && e.calls > e.FailAfter {
		return nil, nil, e.Err
	}
	e.sizes = append(e.sizes, len(records))
	if e.keys == nil {
		e.keys = map[string]bool{}
	}
	inserted := make([]bool, len(records))
	var fails []importer.Failure
	for i, r := range records {
		if e.Refuse != nil {
			if why := e.Refuse(r); why != "" {
				fails = append(fails, importer.Failure{Index: i, Code: "Refused", Message: why})
				continue
			}
		}
		k := r.Account + "\x00" + r.EventID
		if e.keys[k] {
			continue
		}
		e.keys[k] = true
		r.Raw = slices.Clone(r.Raw)
		e.records = append(e.records, r)
		inserted[i] = true
	}
	return inserted, fails, nil
}

// RefusingSink is an EachReportingSink that also tells its refusals
// record by record (importer.RefusingSink), as AppendEachReport gives them.
type RefusingSink struct {
	EachReportingSink
}

// Refuses reports whether Refuse refuses rec.
func (s *RefusingSink) Refuses(rec audit.Record) (importer.Failure, bool) {
	if s.Refuse != nil {
		if why := s.Refuse(rec); why != "" {
			return importer.Failure{Code: "Refused", Message: why}, true
		}
	}
	return importer.Failure{}, false
}

// GroupingSink is an EachSink that is also an importer.GroupingSink: the
// batches it is given share transactions of Group batches (at least 1),
// stored only when theirs commits, after Group batches or at EndGroup.
// FailGroup, when positive, makes the transaction of that number (1 the
// first) fail with Err: none of its batches is stored, nor any after it.
type GroupingSink struct {
	EachSink
	Group     int
	FailGroup int
	Err       error

	gmu     sync.Mutex
	open    *sinkGroup
	groups  int
	failed  error
	pending map[string]bool
}

type sinkGroup struct {
	batches int
	records []audit.Record
	done    chan struct{}
	err     error
}

// PrepareEach returns AppendEach of the records.
func (g *GroupingSink) PrepareEach(records []audit.Record) func(context.Context) ([]bool, error) {
	return func(ctx context.Context) ([]bool, error) { return g.AppendEach(ctx, records) }
}

// StageEach returns AppendEach of the records, in two steps.
func (g *GroupingSink) StageEach(records []audit.Record) func(context.Context) (func(context.Context) ([]bool, error), error) {
	return func(context.Context) (func(context.Context) ([]bool, error), error) {
		return func(ctx context.Context) ([]bool, error) { return g.AppendEach(ctx, records) }, nil
	}
}

// StageGrouped adds the records not stored nor pending to the open
// transaction; committed waits for its end.
func (g *GroupingSink) StageGrouped(records []audit.Record) func(context.Context) (func(context.Context) ([]bool, func() error, error), error) {
	return func(context.Context) (func(context.Context) ([]bool, func() error, error), error) {
		g.gmu.Lock()
		defer g.gmu.Unlock()
		if g.failed != nil {
			return nil, g.failed
		}
		if g.open == nil {
			g.open = &sinkGroup{done: make(chan struct{})}
		}
		if g.pending == nil {
			g.pending = map[string]bool{}
		}
		sg := g.open
		inserted := make([]bool, len(records))
		g.s.mu.Lock()
		for i, r := range records {
			k := r.Account + "\x00" + r.EventID
			if g.s.keys[k] || g.pending[k] {
				continue
			}
			g.pending[k] = true
			r.Raw = slices.Clone(r.Raw)
			sg.records = append(sg.records, r)
			inserted[i] = true
		}
		g.s.mu.Unlock()
		if sg.batches++; sg.batches >= max(g.Group, 1) {
			g.commitLocked()
		}
		return func(context.Context) ([]bool, func() error, error) {
			return inserted, func() error { <-sg.done; return sg.err }, nil
		}, nil
	}
}

// EndGroup commits the open transaction.
func (g *GroupingSink) EndGroup() {
	g.gmu.Lock()
	defer g.gmu.Unlock()
	if g.open != nil {
		g.commitLocked()
	}
}

// commitLocked ends the open transaction: stored, or failed; under gmu.
func (g *GroupingSink) commitLocked() {
	sg := g.open
	g.open = nil
	g.groups++
	if g.groups == g.FailGroup || g.failed != nil {
		sg.err = cmp.Or(g.failed, g.Err)
		g.failed = sg.err
	} else {
		g.s.mu.Lock()
		if g.s.keys == nil {
			g.s.keys = map[string]bool{}
		}
		for _, r := range sg.records {
			g.s.keys[r.Account+"\x00"+r.EventID] = true
			g.s.records = append(g.s.records, r)
		}
		g.s.mu.Unlock()
	}
	for _, r := range sg.records {
		delete(g.pending, r.Account+"\x00"+r.EventID)
	}
	close(sg.done)
}
